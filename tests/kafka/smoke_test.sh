#!/usr/bin/env bash
# End-to-end check of `cepheus gen --kafka` against a real Kafka broker:
# start a broker in a temporary directory, create topic `events` (4
# partitions), produce 2000 generated events with cepheus, read them back
# with Kafka's console consumer and check them, stop the broker.
#
#   tests/kafka/smoke_test.sh path/to/cepheus
#
# Exit 0 only if every check passed. The broker is stopped on any exit; its
# directory is removed on success and kept (path printed) on failure, or
# always with CEPHEUS_KAFKA_KEEP=1.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
broker=$here/broker.sh
cepheus=${1:-}
events=2000
if [ -z "$cepheus" ] || [ ! -x "$cepheus" ]; then
  echo "usage: $0 path/to/cepheus" >&2
  exit 2
fi
command -v python3 >/dev/null || { echo "smoke: python3 is needed" >&2; exit 2; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/cepheus-kafka.XXXXXX")
passed=0
failed=0

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  "$broker" stop "$dir" || true
  if [ "$rc" -eq 0 ] && [ "${CEPHEUS_KAFKA_KEEP:-0}" != 1 ]; then
    rm -rf "$dir"
  else
    echo "smoke: broker directory kept: $dir" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() { date +%s.%N; }
t_total=$(now)
t=$t_total
lap() {  # lap NAME: prints the seconds since the previous lap
  local n
  n=$(now)
  awk -v name="$1" -v a="$n" -v b="$t" 'BEGIN { printf "smoke: %-8s %6.2f s\n", name, a - b }'
  t=$n
}
check() {  # check NAME COMMAND...
  local name=$1
  shift
  if "$@"; then
    echo "smoke: ok   $name"
    passed=$((passed + 1))
  else
    echo "smoke: FAIL $name"
    failed=$((failed + 1))
  fi
}

"$broker" fetch >/dev/null
lap fetch

bootstrap=$("$broker" start "$dir")
lap start
echo "smoke: broker at $bootstrap (dir $dir)"

"$broker" topic "$dir" events 4
lap topic

"$cepheus" gen --kafka "$bootstrap" --topic events --events "$events" --seed 3
lap produce

"$broker" consume "$dir" events "$events" >"$dir/consumed.jsonl"
lap consume

count=$(wc -l <"$dir/consumed.jsonl")
check "consumed $count of $events messages" [ "$count" -eq "$events" ]
check "every message is a JSON object with a user_id" python3 - "$dir/consumed.jsonl" <<'EOF'
import json, sys
bad = 0
with open(sys.argv[1]) as f:
    for n, line in enumerate(f, 1):
        try:
            v = json.loads(line)
            ok = isinstance(v, dict) and "user_id" in v
        except ValueError:
            ok = False
        if not ok:
            bad += 1
            if bad <= 3:
                print(f"smoke: line {n} is not an event with a user_id: {line[:200]!r}", file=sys.stderr)
sys.exit(1 if bad else 0)
EOF

"$broker" stop "$dir"
lap stop
t=$t_total
lap total

echo "kafka-smoke: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
