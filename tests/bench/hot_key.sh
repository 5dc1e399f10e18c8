#!/usr/bin/env bash
# Hot-key benchmark (the engine issue): 1 M generated events with Zipf(1.0)
# users (100 000 users: the busiest sends ~8% of all events), through
#   - the hot-key rule set of tests/bench/hot_key/ (five rules as analysts
#     write them: no first-step filter, the default limit), and
#   - the six shipped rules of rules/,
# each against the pipeline alone and a simdjson parse-only pass over the same
# file, measured in the same run (this machine drifts by the hour).
#
#   tests/bench/hot_key.sh [BUILD_DIR] [EVENTS]
#
# Targets: hot-key set >= 0.25 x pipeline alone; shipped rules >= 0.5 x.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
n=${2:-1000000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$build/cepheus" gen --events "$n" --users 100000 --zipf 1.0 --seed 42 --fraud-rate 0.002 \
  --out-of-order 2s >"$work/events.jsonl"
busiest=$(grep -o '"user_id":"u1"' "$work/events.jsonl" | wc -l)
echo "input: $n events, $(du -h "$work/events.jsonl" | cut -f1), busiest key u1: $busiest events," \
  "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "== hot-key rule set (tests/bench/hot_key/)"
"$build/tests/cepheus_bench" "$root/tests/bench/hot_key" "$work/events.jsonl" --out-of-order 2000 --repeat 3 --per-rule
echo "== shipped rules (rules/)"
"$build/tests/cepheus_bench" "$root/rules" "$work/events.jsonl" --out-of-order 2000 --repeat 3 --per-rule
