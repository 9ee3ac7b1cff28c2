#!/usr/bin/env bash
# Local Redis server for the offer lookup, without Docker.
#
#   deploy/redis.sh start    install redis-server if missing (Debian/Ubuntu), start, wait until ready
#   deploy/redis.sh stop     stop it (nothing left running)
#   deploy/redis.sh status   print whether it runs
#
# Settings (environment):
#   NEXTOFFER_REDIS_PORT        port (default 6379)
#   NEXTOFFER_REDIS_PASSWORD    password of the default user, or of NEXTOFFER_REDIS_USER if set
#   NEXTOFFER_REDIS_USER        an ACL user for nextoffer (read, write and key commands and the
#                               offer-writing script, nothing
#                               dangerous); the default user is then switched off
#   NEXTOFFER_REDIS_TLS_DIR     serve TLS only, with redis.crt, redis.key and ca.crt from this folder
#   NEXTOFFER_REDIS_APPENDONLY  yes: keep the data across restarts in an append-only file (default no)
#   NEXTOFFER_RUN_DIR           data, logs and pid files (default <repo>/.run)
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
TLS=${NEXTOFFER_REDIS_TLS_DIR:-}
cli() {
  local args=(-p "$PORT")
  [ -n "$TLS" ] && args+=(--tls --cacert "$TLS/ca.crt")
  [ -n "${NEXTOFFER_REDIS_USER:-}" ] && args+=(--user "$NEXTOFFER_REDIS_USER")
  [ -n "${NEXTOFFER_REDIS_PASSWORD:-}" ] && args+=(--no-auth-warning --pass "$NEXTOFFER_REDIS_PASSWORD")
  redis-cli "${args[@]}" "$@"
}

start() {
  install
  if running; then say "already running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"; return 0; fi
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null &&
    die "port $PORT is taken by another program; stop it or set NEXTOFFER_REDIS_PORT"
  mkdir -p "$STATE"
  {
    echo "bind 127.0.0.1 -::1"
    if [ -n "$TLS" ]; then
      echo "port 0"
      echo "tls-port $PORT"
      echo "tls-cert-file $TLS/redis.crt"
      echo "tls-key-file $TLS/redis.key"
      echo "tls-ca-cert-file $TLS/ca.crt"
      echo "tls-auth-clients no"
    else
      echo "port $PORT"
    fi
    echo "daemonize yes"
    echo "pidfile $PIDFILE"
    echo "logfile $STATE/redis.log"
    echo "dir $STATE"
    echo "save \"\""
    echo "appendonly ${NEXTOFFER_REDIS_APPENDONLY:-no}"
    # Offers are ~700-byte values: kept in a compact listpack instead of a hash table they take
    # ~10% less memory per shopper (the alias works on Redis 6 and 7).
    echo "hash-max-ziplist-value 1024"
    if [ -n "${NEXTOFFER_REDIS_USER:-}" ]; then
      [ -n "${NEXTOFFER_REDIS_PASSWORD:-}" ] || die "NEXTOFFER_REDIS_USER needs NEXTOFFER_REDIS_PASSWORD"
      echo "user default off"
      echo "user $NEXTOFFER_REDIS_USER on >$NEXTOFFER_REDIS_PASSWORD ~* &* -@all +@read +@write +@keyspace +@connection -@dangerous +evalsha +eval +script|load"
    elif [ -n "${NEXTOFFER_REDIS_PASSWORD:-}" ]; then
      echo "requirepass $NEXTOFFER_REDIS_PASSWORD"
    fi
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
