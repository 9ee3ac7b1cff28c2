#!/usr/bin/env bash
# Creates the project's virtual environment (.venv) and installs nextoffer with its test tools.
# Versions come from requirements.lock (the locked set the tests and the audit run with).
# Idempotent: a second run only checks. Set NEXTOFFER_PYTHON to choose the interpreter.
#   deploy/bootstrap.sh --relock   re-resolve from pyproject.toml and rewrite requirements.lock
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${NEXTOFFER_PYTHON:-python3}
VENV=$ROOT/.venv
command -v "$PY" >/dev/null || { echo "[setup] error: $PY not found; install Python 3.10+" >&2; exit 1; }
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
  { echo "[setup] error: Python 3.10+ is needed ($("$PY" --version))" >&2; exit 1; }
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PY" -m venv "$VENV" || { echo "[setup] error: venv failed (Debian: apt-get install -y python3-venv)" >&2; exit 1; }
fi
LOCK=$ROOT/requirements.lock
if [ "${1:-}" = "--relock" ]; then
  "$VENV/bin/python" -m pip install --upgrade -e "$ROOT[test]" >"$VENV/install.log" 2>&1 ||
    { tail -n 30 "$VENV/install.log" >&2; echo "[setup] error: resolving failed" >&2; exit 1; }
  { sed -n 1,2p "$LOCK"; "$VENV/bin/python" -m pip freeze --exclude-editable | grep -v '^nextoffer'; } >"$LOCK.new"
  mv "$LOCK.new" "$LOCK"
  echo "[setup] rewrote requirements.lock"
fi
# The compiled kernels' source is in the stamp too: an edited models/_kernels.c is built again.
stamp=$VENV/.installed-$(cat "$ROOT/pyproject.toml" "$LOCK" "$ROOT/models/_kernels.c" | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "[setup] installing nextoffer and its dependencies into .venv"
  log=$VENV/install.log
  if ! { "$VENV/bin/python" -m pip install --upgrade pip &&
         "$VENV/bin/python" -m pip install -c "$LOCK" -e "$ROOT[test]"; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "[setup] error: installing the Python packages failed (full log: $log)" >&2
    exit 1
  fi
  rm -f "$VENV"/.installed-* && touch "$stamp"
fi
echo "[setup] python environment ready ($("$VENV/bin/python" --version))"
