#!/usr/bin/env bash
# Sets everything up and runs the live demo: a local Kafka broker and Redis, a worker, a replay of
# the given data file (Online Retail or REES46 CSV) or, without one, the storefront simulator,
# and a live view of the offers. Extra arguments go to 'nextoffer demo' (see --help).
# The broker and Redis keep running afterwards so you can read offers (redis-cli HGET nbo:<user>
# cart); 'deploy/stack.sh down' stops them.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
deploy/bootstrap.sh
deploy/stack.sh up
status=0
.venv/bin/nextoffer demo "$@" || status=$?
echo
echo "The broker and Redis are still running: try 'redis-cli HGETALL nbo:<user_id>' or"
echo "'.venv/bin/nextoffer lookup <user_id>'; stop them with 'deploy/stack.sh down'."
exit $status
