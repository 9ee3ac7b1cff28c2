#!/usr/bin/env bash
# Local single-node Apache Kafka broker (KRaft mode), without Docker.
#
#   deploy/kafka.sh fetch     download the broker from Maven Central into the cache
#   deploy/kafka.sh start     fetch if needed, format storage once, start, wait until ready
#   deploy/kafka.sh stop      stop the broker (nothing left running)
#   deploy/kafka.sh status    print whether it runs and where
#   deploy/kafka.sh reset     stop and delete its data (topics, offsets)
#
# Settings (environment):
#   NEXTOFFER_KAFKA_VERSION          broker version (default below; 3.9.1 works too)
#   NEXTOFFER_KAFKA_PORT             client port (default 9092)
#   NEXTOFFER_KAFKA_CONTROLLER_PORT  KRaft controller port (default 9093)
#   NEXTOFFER_KAFKA_HEAP             JVM heap (default 512m)
#   NEXTOFFER_KAFKA_SASL_PORT        also listen for SASL_PLAINTEXT (PLAIN) clients on this port,
#   NEXTOFFER_KAFKA_SASL_USERNAME    with this user (default nextoffer)
#   NEXTOFFER_KAFKA_SASL_PASSWORD    and password (required with the port)
#   NEXTOFFER_CACHE_DIR              download cache (default ~/.cache/nextoffer)
#   NEXTOFFER_RUN_DIR                data, logs and pid files (default <repo>/.run)
set -euo pipefail

# The one place the default broker version is pinned.
DEFAULT_KAFKA_VERSION=4.2.1
LOG4J_VERSION=2.24.3

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
VERSION=${NEXTOFFER_KAFKA_VERSION:-$DEFAULT_KAFKA_VERSION}
PORT=${NEXTOFFER_KAFKA_PORT:-9092}
CONTROLLER_PORT=${NEXTOFFER_KAFKA_CONTROLLER_PORT:-9093}
HEAP=${NEXTOFFER_KAFKA_HEAP:-512m}
CACHE=${NEXTOFFER_CACHE_DIR:-$HOME/.cache/nextoffer}
RUN=${NEXTOFFER_RUN_DIR:-$ROOT/.run}
LIBS=$CACHE/kafka-$VERSION/libs
STATE=$RUN/kafka
PIDFILE=$STATE/kafka.pid
LOG=$STATE/server.log

say() { echo "[kafka] $*"; }
die() { echo "[kafka] error: $*" >&2; exit 1; }

need_java() {
  command -v java >/dev/null 2>&1 ||
    die "Java 17+ is needed to run the broker. Install it (Debian: apt-get install -y openjdk-17-jre-headless) and retry."
}

fetch() {
  if [ -f "$LIBS/kafka_2.13-$VERSION.jar" ]; then return 0; fi
  command -v mvn >/dev/null 2>&1 ||
    die "Maven is needed once to download Kafka $VERSION. Install it (Debian: apt-get install -y maven) and retry."
  say "downloading Apache Kafka $VERSION from Maven Central into $CACHE (once)"
  local work; work=$(mktemp -d)
  cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>nextoffer.local</groupId><artifactId>kafka-broker</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
  mkdir -p "$LIBS.partial"
  if ! mvn -B -q -f "$work/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$LIBS.partial" >"$work/mvn.log" 2>&1; then
    tail -n 20 "$work/mvn.log" >&2
    die "could not download Kafka $VERSION (is NEXTOFFER_KAFKA_VERSION a released version?)"
  fi
  rm -rf "$LIBS" && mv "$LIBS.partial" "$LIBS" && rm -rf "$work"
  say "cached $(ls "$LIBS" | wc -l) jars in $LIBS"
}

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

JVM=(-Xms"$HEAP" -Xmx"$HEAP" -XX:+UseG1GC -Djava.awt.headless=true
  -Dlog4j2.configurationFile="$HERE/kafka/log4j2.properties"
  -Dnextoffer.kafka.logfile="$LOG" -cp "$LIBS/*")
java_run() { java "${JVM[@]}" "$@"; }

# A SASL_PLAINTEXT listener with the PLAIN mechanism beside the plain one, so clients can be
# run with KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT. Production brokers should use SASL_SSL.
add_sasl_listener() {
  local file=$1 sasl=$NEXTOFFER_KAFKA_SASL_PORT user=${NEXTOFFER_KAFKA_SASL_USERNAME:-nextoffer}
  [ -n "${NEXTOFFER_KAFKA_SASL_PASSWORD:-}" ] ||
    die "NEXTOFFER_KAFKA_SASL_PORT is set but NEXTOFFER_KAFKA_SASL_PASSWORD is not"
  sed -i -e "s#^listeners=\(.*\)#listeners=\1,SASL_PLAINTEXT://127.0.0.1:$sasl#" \
         -e "s#^advertised.listeners=\(.*\)#advertised.listeners=\1,SASL_PLAINTEXT://${NEXTOFFER_KAFKA_ADVERTISED_HOST:-127.0.0.1}:$sasl#" \
         -e "s#^listener.security.protocol.map=\(.*\)#listener.security.protocol.map=\1,SASL_PLAINTEXT:SASL_PLAINTEXT#" \
         "$file"
  {
    echo "sasl.enabled.mechanisms=PLAIN"
    echo "listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_${user}=\"${NEXTOFFER_KAFKA_SASL_PASSWORD}\";"
  } >>"$file"
}

configure() {
  mkdir -p "$STATE/data"
  sed -e "s#@PORT@#$PORT#g" -e "s#@CONTROLLER_PORT@#$CONTROLLER_PORT#g" \
      -e "s#@HOST@#${NEXTOFFER_KAFKA_ADVERTISED_HOST:-127.0.0.1}#g" \
      -e "s#@DATA_DIR@#$STATE/data#g" -e "s#@PARTITIONS@#${NEXTOFFER_PARTITIONS:-8}#g" \
      -e "s#@OFFSETS_PARTITIONS@#8#g" \
      "$HERE/kafka/server.properties.in" >"$STATE/server.properties"
  chmod 600 "$STATE/server.properties"
  if [ -n "${NEXTOFFER_KAFKA_SASL_PORT:-}" ]; then add_sasl_listener "$STATE/server.properties"; fi
  if [ ! -f "$STATE/data/meta.properties" ]; then
    local id; id=$(java_run kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    java_run kafka.tools.StorageTool format -t "$id" -c "$STATE/server.properties" >"$STATE/format.log" 2>&1 ||
      { cat "$STATE/format.log" >&2; die "formatting KRaft storage failed"; }
    say "formatted KRaft storage (cluster $id)"
  fi
}

start() {
  need_java
  if running; then say "already running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"; return 0; fi
  for p in "$PORT" "$CONTROLLER_PORT" ${NEXTOFFER_KAFKA_SASL_PORT:-}; do
    port_open "$p" && die "port $p is taken by another program; stop it or set NEXTOFFER_KAFKA_PORT / NEXTOFFER_KAFKA_CONTROLLER_PORT"
  done
  fetch
  configure
  : >"$LOG"
  nohup java "${JVM[@]}" kafka.Kafka "$STATE/server.properties" >"$STATE/stdout.log" 2>&1 &
  echo $! >"$PIDFILE"
  say "starting Kafka $VERSION (pid $!), logs in $LOG"
  local deadline=$((SECONDS + ${NEXTOFFER_KAFKA_START_TIMEOUT:-90}))
  until grep -q "Kafka Server started" "$LOG" 2>/dev/null && port_open "$PORT"; do
    if ! running; then
      tail -n 30 "$STATE/stdout.log" "$LOG" >&2 || true
      rm -f "$PIDFILE"; die "the broker exited during start-up (see $LOG)"
    fi
    [ $SECONDS -lt $deadline ] || die "the broker did not become ready in time (see $LOG)"
    sleep 0.5
  done
  say "ready on 127.0.0.1:$PORT"
}

stop() {
  if ! running; then rm -f "$PIDFILE"; say "not running"; return 0; fi
  local pid; pid=$(cat "$PIDFILE")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; say "killed (did not stop in 30 s)"; fi
  rm -f "$PIDFILE"
  say "stopped"
}

status() {
  if running; then say "running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT, Kafka $VERSION"; else say "not running"; return 3; fi
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) status ;;
  reset) stop; rm -rf "$STATE"; say "data removed" ;;
  *) echo "usage: $0 {fetch|start|stop|restart|status|reset}" >&2; exit 2 ;;
esac
