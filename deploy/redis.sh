#!/usr/bin/env bash
# Local Redis server for the offer lookup, without Docker.
#
#   deploy/redis.sh start    install redis-server if missing (Debian/Ubuntu), start, wait until ready
#   deploy/redis.sh stop     stop it (nothing left running)
#   deploy/redis.sh status   print whether it runs
#
# Settings: NEXTOFFER_REDIS_PORT (default 6379), NEXTOFFER_REDIS_PASSWORD (optional; also sets
# a password for the default user), NEXTOFFER_REDIS_APPENDONLY (yes: keep the data across restarts
# in an append-only file; default no), NEXTOFFER_RUN_DIR (default <repo>/.run).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
PORT=${NEXTOFFER_REDIS_PORT:-6379}
RUN=${NEXTOFFER_RUN_DIR:-$ROOT/.run}
STATE=$RUN/redis-$PORT
PIDFILE=$STATE/redis.pid

say() { echo "[redis] $*"; }
die() { echo "[redis] error: $*" >&2; exit 1; }

install() {
  command -v redis-server >/dev/null 2>&1 && return 0
  command -v apt-get >/dev/null 2>&1 ||
    die "redis-server is not installed and apt-get is missing; install Redis 6+ and retry"
  local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  say "installing Debian's redis-server (once)"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null ||
    die "apt-get install redis-server failed"
}

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }
cli() { redis-cli -p "$PORT" ${NEXTOFFER_REDIS_PASSWORD:+--no-auth-warning -a "$NEXTOFFER_REDIS_PASSWORD"} "$@"; }

start() {
  install
  if running; then say "already running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"; return 0; fi
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null &&
    die "port $PORT is taken by another program; stop it or set NEXTOFFER_REDIS_PORT"
  mkdir -p "$STATE"
  {
    echo "bind 127.0.0.1 -::1"
    echo "port $PORT"
    echo "daemonize yes"
    echo "pidfile $PIDFILE"
    echo "logfile $STATE/redis.log"
    echo "dir $STATE"
    echo "save \"\""
    echo "appendonly ${NEXTOFFER_REDIS_APPENDONLY:-no}"
    [ -n "${NEXTOFFER_REDIS_PASSWORD:-}" ] && echo "requirepass $NEXTOFFER_REDIS_PASSWORD"
  } >"$STATE/redis.conf"
  chmod 600 "$STATE/redis.conf"
  redis-server "$STATE/redis.conf" || die "redis-server failed to start (see $STATE/redis.log)"
  for _ in $(seq 1 100); do
    [ "$(cli ping 2>/dev/null)" = PONG ] && { say "ready on 127.0.0.1:$PORT"; return 0; }
    sleep 0.1
  done
  die "Redis did not answer in time (see $STATE/redis.log)"
}

stop() {
  if ! running; then rm -f "$PIDFILE"; say "not running"; return 0; fi
  local pid; pid=$(cat "$PIDFILE")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
  say "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) if running; then say "running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"; else say "not running"; exit 3; fi ;;
  *) echo "usage: $0 {start|stop|restart|status}" >&2; exit 2 ;;
esac
