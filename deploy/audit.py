"""Audit the locked dependency set for known vulnerabilities.

With PyPI's per-release JSON API reachable, this runs pip-audit on requirements.lock and
fails on any known vulnerability. Some package mirrors serve only the per-project JSON
(whose ``vulnerabilities`` describe the latest release); then every locked package that is
at its latest release is checked from there, the others are listed as not audited, and the
audit still fails on any vulnerability found. NEXTOFFER_AUDIT=required makes packages that
could not be audited a failure too.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
PYPI = os.environ.get("NEXTOFFER_PYPI_JSON", "https://pypi.org/pypi")


def locked() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith("#") and "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip()] = version.strip()
    return pins


def fetch(url: str):
    try:
        with urllib.request.urlopen(url, timeout=15) as response:
            return json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def main() -> int:
    pins = locked()
    name, version = next(iter(pins.items()))
    if fetch(f"{PYPI}/{name}/{version}/json") is not None:
        print(f"[audit] pip-audit on {LOCK.name} ({len(pins)} packages)", flush=True)
        return subprocess.call([str(ROOT / ".venv" / "bin" / "pip-audit"), "-r", str(LOCK), "--no-deps",
                                "--strict", "--progress-spinner", "off"])
    found, unaudited, audited = [], [], 0
    for name, version in pins.items():
        project = fetch(f"{PYPI}/{name}/json")
        if project is None or project["info"]["version"] != version:
            unaudited.append(f"{name}=={version}")
            continue
        audited += 1
        found += [f"{name}=={version}: {v.get('id')} (fixed in {', '.join(v.get('fixed_in') or ['-'])})"
                  for v in project.get("vulnerabilities") or []]
    print(f"[audit] {audited} of {len(pins)} locked packages checked against PyPI's advisories "
          f"(per-release API unavailable; each checked package is at its latest release)")
    if unaudited:
        print(f"[audit] not audited (not the latest release, or not on PyPI): {', '.join(unaudited)}")
    for line in found:
        print(f"[audit] VULNERABLE {line}")
    if found:
        return 1
    if unaudited and os.environ.get("NEXTOFFER_AUDIT") == "required":
        print("[audit] error: some packages could not be audited (NEXTOFFER_AUDIT=required)")
        return 1
    print("[audit] no known vulnerabilities found")
    return 0


if __name__ == "__main__":
    sys.exit(main())
