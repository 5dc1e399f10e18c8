#!/usr/bin/env bash
# A real single-node Apache Kafka broker (KRaft, combined broker+controller)
# for integration tests, run from Maven Central jars: no Docker, no package.
#
#   broker.sh fetch                          jars into the cache (prints its path)
#   broker.sh start DIR                      start a broker in DIR, print 127.0.0.1:PORT
#   broker.sh stop DIR                       stop it (TERM, then KILL); DIR is kept
#   broker.sh topic DIR NAME PARTITIONS      create a topic (replication factor 1)
#   broker.sh consume DIR TOPIC N [--read-committed] [--keys]
#                                            values of the first N messages, one a line
#                                            (with --keys: KEY<TAB>VALUE)
#   broker.sh produce DIR TOPIC              produce stdin's KEY<TAB>VALUE lines, in order
#   broker.sh group-offsets DIR GROUP        the group's committed offsets, one
#                                            TOPIC PARTITION OFFSET line per partition
#
# Environment:
#   CEPHEUS_KAFKA_VERSION        Kafka version (default 4.4.0)
#   CEPHEUS_KAFKA_JARS           jar directory (default
#                                ${XDG_CACHE_HOME:-$HOME/.cache}/cepheus/kafka-VERSION/jars)
#   CEPHEUS_KAFKA_START_TIMEOUT  seconds to wait for the broker (default 60)
#   CEPHEUS_KAFKA_HEAP           broker heap (default 512m)
#   CEPHEUS_KAFKA_CONSUME_TIMEOUT  consume gives up after this many seconds
#                                without a message (default 30)
#
# DIR holds server.properties, log4j2.properties, data/, broker.log, broker.pid
# and bootstrap (the address start printed). Brokers in different DIRs are
# independent; ports are picked free on 127.0.0.1 at each start.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
version=${CEPHEUS_KAFKA_VERSION:-4.4.0}
jars=${CEPHEUS_KAFKA_JARS:-${XDG_CACHE_HOME:-$HOME/.cache}/cepheus/kafka-$version/jars}
start_timeout=${CEPHEUS_KAFKA_START_TIMEOUT:-60}
heap=${CEPHEUS_KAFKA_HEAP:-512m}
consume_timeout=${CEPHEUS_KAFKA_CONSUME_TIMEOUT:-30}

# Short-lived tools: quick start-up matters more than peak speed.
tool_jvm=(-Xms64m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto
          -Djava.awt.headless=true)

die() { echo "broker.sh: $*" >&2; exit 1; }

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
  exit 2
}

# ---------------------------------------------------------------- fetch

# The marker names the version and a hash of the pom, so editing the pom or
# changing the version fetches again; otherwise Maven is not even started.
fetch_stamp() {
  echo "kafka=$version pom=$(sha256sum "$here/pom.xml" | cut -c1-16)"
}

do_fetch() {
  local stamp marker
  stamp=$(fetch_stamp)
  marker=$jars/.complete
  if [ -f "$marker" ] && [ "$(cat "$marker")" = "$stamp" ]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (needed once to fetch the Kafka jars)"
  mkdir -p "$jars"
  # Two starts at once share one cache: the second waits for the first.
  exec 8>"$jars/.fetch.lock"
  flock 8
  if ! { [ -f "$marker" ] && [ "$(cat "$marker")" = "$stamp" ]; }; then
    rm -f "$marker" "$jars"/*.jar
    echo "broker.sh: fetching Kafka $version jars into $jars" >&2
    if ! mvn -B -q -Dstyle.color=never -f "$here/pom.xml" \
        -Dkafka.version="$version" -Dkafka.jars.dir="$jars" \
        dependency:copy-dependencies >"$jars/.fetch.log" 2>&1; then
      cat "$jars/.fetch.log" >&2
      die "mvn could not fetch Kafka $version (log: $jars/.fetch.log)"
    fi
    [ -f "$jars/kafka_2.13-$version.jar" ] || die "kafka_2.13-$version.jar missing in $jars"
    echo "$stamp" >"$marker"
  fi
  flock -u 8
  exec 8>&-
}

# ---------------------------------------------------------------- helpers

need_dir() {
  [ -n "${1:-}" ] || usage
  [ -d "$1" ] || die "$1: no such directory"
  cd "$1" && pwd
}

# The address of the broker of DIR, which must be running.
bootstrap_of() {
  [ -s "$1/bootstrap" ] || die "$1: no broker was started here (no $1/bootstrap)"
  live_pid "$1" >/dev/null || die "$1: the broker is not running (see $1/broker.log)"
  cat "$1/bootstrap"
}

# Pid of the broker of DIR if it is alive (and is still our java process).
live_pid() {
  local dir=$1 pid
  [ -s "$dir/broker.pid" ] || return 1
  pid=$(cat "$dir/broker.pid")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$dir/server.properties" || return 1
  echo "$pid"
}

# Two distinct free ports on 127.0.0.1, chosen by the kernel.
free_ports() {
  python3 - <<'EOF'
import socket
socks = []
for _ in range(2):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

# A Kafka Uuid: 16 random bytes, URL-safe base64 without padding; like
# Uuid.randomUuid, avoid one starting with '-' (it reads as an option).
random_cluster_id() {
  local id
  while :; do
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
    [ "${id:0:1}" != "-" ] && { echo "$id"; return; }
  done
}

# One Metadata request (v4, all topics) over bash's /dev/tcp; succeeds when
# the broker answers with at least one live broker. No JVM needed.
#   size=22 | api_key=3 | version=4 | correlation_id=1 | client_id="cepheus"
#   | topics=null (-1) | allow_auto_topic_creation=false
metadata_ok() {
  local port=$1 out
  out=$(timeout 2 bash -c '
    exec 3<>/dev/tcp/127.0.0.1/'"$port"' || exit 1
    printf "\x00\x00\x00\x16\x00\x03\x00\x04\x00\x00\x00\x01\x00\x07cepheus\xff\xff\xff\xff\x00" >&3
    head -c 16 <&3' 2>/dev/null | od -An -tu1 -v) || return 1
  # bytes: size(4) correlation_id(4) throttle_time_ms(4) broker_count(4)
  set -- $out
  [ $# -eq 16 ] || return 1
  [ "$5$6$7$8" = "0001" ] || return 1
  local brokers=$(( (${13} << 24) | (${14} << 16) | (${15} << 8) | ${16} ))
  [ "$brokers" -ge 1 ]
}

write_config() {
  local dir=$1 port=$2 cport=$3
  cat >"$dir/server.properties" <<EOF
# Written by tests/kafka/broker.sh: one KRaft node, broker and controller.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=4
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Few threads: the machine has two cores shared with builds.
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
background.threads=2
log.cleaner.threads=1
log.retention.check.interval.ms=300000
EOF
  # Broker logs go to stdout, which start sends to DIR/broker.log.
  cat >"$dir/log4j2.properties" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.target = SYSTEM_OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.state.name = state.change.logger
logger.state.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF
  # The tools only warn, and on stderr, so stdout carries their output alone.
  cat >"$dir/log4j2-tools.properties" <<'EOF'
status = warn
appender.err.type = Console
appender.err.name = ERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = ERR
EOF
}

run_tool() {  # run_tool DIR CLASS ARGS...
  local dir=$1 cls=$2
  shift 2
  java "${tool_jvm[@]}" -Dlog4j2.configurationFile="$dir/log4j2-tools.properties" \
    -cp "$jars/*" "$cls" "$@"
}

# ---------------------------------------------------------------- start

# One attempt: config, format, launch, wait. Returns 0 when ready, 3 when the
# ports were taken meanwhile (the caller tries other ports), 1 otherwise.
start_once() {
  local dir=$1 port cport cid pid deadline
  read -r port cport < <(free_ports)
  [ -n "$cport" ] || die "could not pick free ports"
  rm -rf "$dir/data" "$dir/broker.pid" "$dir/bootstrap"
  write_config "$dir" "$port" "$cport"
  cid=$(random_cluster_id)

  # 4.x formats a dynamic quorum: with controller.quorum.bootstrap.servers
  # the only controller must be formatted --standalone (KIP-853).
  if ! run_tool "$dir" kafka.tools.StorageTool format --standalone \
      -t "$cid" -c "$dir/server.properties" >"$dir/format.log" 2>&1; then
    cat "$dir/format.log" >&2
    die "storage format failed"
  fi

  java -Xms128m -Xmx"$heap" -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError \
    -Xshare:auto -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$dir/log4j2.properties" \
    -cp "$jars/*" kafka.Kafka "$dir/server.properties" \
    >"$dir/broker.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$dir/broker.pid"

  deadline=$((SECONDS + start_timeout))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null || true
      if grep -q "Address already in use" "$dir/broker.log"; then
        return 3
      fi
      echo "broker.sh: the broker exited during start; end of $dir/broker.log:" >&2
      tail -n 40 "$dir/broker.log" >&2
      return 1
    fi
    if metadata_ok "$port"; then
      echo "127.0.0.1:$port" >"$dir/bootstrap"
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "broker.sh: the broker was not ready after ${start_timeout}s; end of $dir/broker.log:" >&2
      tail -n 40 "$dir/broker.log" >&2
      stop_pid "$dir" "$pid"
      return 1
    fi
    sleep 0.25
  done
}

do_start() {
  local dir rc attempt
  dir=$(need_dir "${1:-}")
  if pid=$(live_pid "$dir"); then
    die "a broker (pid $pid) already runs in $dir: stop it first"
  fi
  command -v java >/dev/null || die "java not found"
  do_fetch
  for attempt in 1 2 3; do
    rc=0
    start_once "$dir" || rc=$?
    case $rc in
      0) cat "$dir/bootstrap"; return 0 ;;
      3) echo "broker.sh: port taken while starting, trying other ports" >&2 ;;
      *) exit 1 ;;
    esac
  done
  die "no free ports after 3 attempts"
}

# ---------------------------------------------------------------- stop

stop_pid() {  # stop_pid DIR PID
  local dir=$1 pid=$2 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 120; i++)); do  # 30 s
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.25
  done
  echo "broker.sh: broker $pid ignored SIGTERM for 30s, killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 40; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.25
  done
}

do_stop() {
  local dir pid
  dir=$(need_dir "${1:-}")
  if pid=$(live_pid "$dir"); then
    stop_pid "$dir" "$pid"
  fi
  rm -f "$dir/broker.pid"
}

# ---------------------------------------------------------------- topic, consume

do_topic() {
  [ $# -eq 3 ] || usage
  local dir bootstrap
  dir=$(need_dir "$1")
  bootstrap=$(bootstrap_of "$dir")
  do_fetch
  timeout 90 java "${tool_jvm[@]}" -Dlog4j2.configurationFile="$dir/log4j2-tools.properties" \
    -cp "$jars/*" org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" \
    --create --topic "$2" --partitions "$3" --replication-factor 1 >&2
}

do_consume() {
  [ $# -ge 3 ] && [ $# -le 5 ] || usage
  local dir bootstrap topic=$2 n=$3 isolation=read_uncommitted err rc=0 got keys=() opt
  dir=$(need_dir "$1")
  for opt in "${@:4}"; do
    case $opt in
      --read-committed) isolation=read_committed ;;
      --keys) keys=(--property print.key=true --property key.separator=$'\t') ;;
      *) usage ;;
    esac
  done
  bootstrap=$(bootstrap_of "$dir")
  do_fetch
  err=$(mktemp "$dir/consume.XXXXXX.log")
  # --timeout-ms ends it when no message came for that long; timeout(1) also
  # bounds the consumer's close (it once sat there past its poll timeout).
  timeout $((consume_timeout + 15)) java "${tool_jvm[@]}" -Dlog4j2.configurationFile="$dir/log4j2-tools.properties" \
    -cp "$jars/*" org.apache.kafka.tools.consumer.ConsoleConsumer \
    --bootstrap-server "$bootstrap" --topic "$topic" --from-beginning \
    --max-messages "$n" --timeout-ms "$((consume_timeout * 1000))" --isolation-level "$isolation" \
    "${keys[@]}" 2>"$err" || rc=$?
  got=$(sed -n 's/^Processed a total of \([0-9]*\) messages.*/\1/p' "$err" | tail -n 1)
  if [ "$rc" -ne 0 ] || [ "${got:-0}" -lt "$n" ]; then
    cat "$err" >&2
    die "consume: read ${got:-0} of $n messages of $topic (exit $rc)"
  fi
  rm -f "$err"
}

# Kafka's console producer: one message per stdin line, keyed by what comes
# before the first tab (so a key always lands on one partition), acks=all.
do_produce() {
  [ $# -eq 2 ] || usage
  local dir bootstrap
  dir=$(need_dir "$1")
  bootstrap=$(bootstrap_of "$dir")
  do_fetch
  java "${tool_jvm[@]}" -Dlog4j2.configurationFile="$dir/log4j2-tools.properties" \
    -cp "$jars/*" org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$bootstrap" --topic "$2" \
    --property parse.key=true --property key.separator=$'\t' --producer-property acks=all \
    --producer-property linger.ms=20
}

# Kafka's own group tool; its table has GROUP TOPIC PARTITION CURRENT-OFFSET
# ... columns ("-" for a partition with no committed offset).
do_group_offsets() {
  [ $# -eq 2 ] || usage
  local dir bootstrap
  dir=$(need_dir "$1")
  bootstrap=$(bootstrap_of "$dir")
  do_fetch
  timeout 90 java "${tool_jvm[@]}" -Dlog4j2.configurationFile="$dir/log4j2-tools.properties" \
    -cp "$jars/*" org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "$bootstrap" \
    --describe --offsets --group "$2" | awk -v g="$2" '$1 == g && $3 ~ /^[0-9]+$/ { print $2, $3, $4 }'
}

# ---------------------------------------------------------------- main

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
  fetch) do_fetch; echo "$jars" ;;
  start) [ $# -eq 1 ] || usage; do_start "$1" ;;
  stop) [ $# -eq 1 ] || usage; do_stop "$1" ;;
  topic) do_topic "$@" ;;
  consume) do_consume "$@" ;;
  produce) do_produce "$@" ;;
  group-offsets) do_group_offsets "$@" ;;
  *) usage ;;
esac
