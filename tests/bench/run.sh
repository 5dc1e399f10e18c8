#!/usr/bin/env bash
# Replay benchmark: 1 M generated events through every rule in rules/, timed
# against a simdjson parse-only pass over the same file. Prints the figures
# the README's performance section quotes.
#
#   tests/bench/run.sh [BUILD_DIR] [EVENTS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
n=${2:-1000000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$build/cepheus" gen --events "$n" --users 100000 --seed 42 --fraud-rate 0.002 --out-of-order 2s >"$work/events.jsonl"
echo "input: $n events, $(du -h "$work/events.jsonl" | cut -f1), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"$build/tests/cepheus_bench" "$root/rules" "$work/events.jsonl" --out-of-order 2000 --repeat 3 --per-rule
