#!/usr/bin/env bash
# Sets everything up and runs the whole test suite: unit, agent and integration tests (the
# latter against the real local Kafka broker and Redis, which this script starts and, if it
# started them, stops again), after auditing the locked dependencies (deploy/audit.sh) and
# installing Chromium for the dashboard test (deploy/browser.sh). Extra arguments go to pytest.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
started=()
cleanup() {
  for svc in "${started[@]}"; do "deploy/$svc.sh" stop || true; done
}
trap cleanup EXIT
deploy/bootstrap.sh
deploy/audit.sh
deploy/browser.sh
for svc in kafka redis; do
  if ! "deploy/$svc.sh" status >/dev/null 2>&1; then
    "deploy/$svc.sh" start
    started+=("$svc")
  fi
done
export NEXTOFFER_STACK_STARTED=1
.venv/bin/python -m pytest "$@"
