#!/usr/bin/env bash
# Sets everything up and runs the live demo: a local Kafka broker and Redis, a worker, a replay of
# the given data file (Online Retail or REES46 CSV) or, without one, the storefront simulator,
# and a live view of the offers. Extra arguments go to 'nextoffer demo' (see --help).
# The broker and Redis keep running afterwards so you can read offers (the demo prints the
# redis-cli command); 'deploy/stack.sh down' stops them.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
deploy/bootstrap.sh
deploy/stack.sh up
status=0
.venv/bin/nextoffer demo "$@" || status=$?
echo
echo "The broker and Redis are still running (read offers with the command above);"
echo "stop them with 'deploy/stack.sh down'."
exit $status
