#!/usr/bin/env bash
# Audits the locked dependency set (requirements.lock) for known vulnerabilities and fails on
# any; see deploy/audit.py for how it works where PyPI's API is only partly reachable.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
exec "$ROOT/.venv/bin/python" "$ROOT/deploy/audit.py"
