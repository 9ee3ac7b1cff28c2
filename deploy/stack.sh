#!/usr/bin/env bash
# The local stack: Kafka broker + Redis server.  deploy/stack.sh {up|down|status}
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
case "${1:-}" in
  up) "$HERE/kafka.sh" start && "$HERE/redis.sh" start ;;
  down) "$HERE/redis.sh" stop; "$HERE/kafka.sh" stop ;;
  status) rc=0; "$HERE/kafka.sh" status || rc=$?; "$HERE/redis.sh" status || rc=$?; exit $rc ;;
  *) echo "usage: $0 {up|down|status}" >&2; exit 2 ;;
esac
