#!/usr/bin/env bash
# Functions benchmark (issue 17): the rules of tests/bench/functions/with/
# (matches, geo_km, split_part, hour in a zone, round) beside
# tests/bench/functions/without/ (the same rules with plain comparisons), on
# 1 M generated events with Zipf(1.0) users to which a position (logins) and
# an e-mail (every event) are added, in the same run; best of 3 each.
#
#   tests/bench/functions.sh [BUILD_DIR] [EVENTS]
#
# Target: calling the functions costs no allocation per call (the unit test
# "the functions allocate nothing per call" counts them); here the figure is
# the ratio of the two replay rates.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
n=${2:-1000000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$build/cepheus" gen --events "$n" --users 100000 --zipf 1.0 --seed 42 --fraud-rate 0.002 --out-of-order 2s |
  python3 -c '
import json, sys, zlib
cities = [(48.8566, 2.3522), (40.7128, -74.006), (19.076, 72.8777), (-23.5505, -46.6333), (52.52, 13.405)]
for line in sys.stdin:
    e = json.loads(line)
    h = zlib.crc32(line.encode())
    e["email"] = ("qwe%d@gmail.com" % (h % 100000)) if h % 7 == 0 else "%s@example.com" % e["user_id"]
    if e["type"] == "login":
        lat, lon = cities[h % len(cities)] if h % 5 == 0 else cities[zlib.crc32(e["user_id"].encode()) % len(cities)]
        e["lat"], e["lon"] = lat, lon
    sys.stdout.write(json.dumps(e, separators=(",", ":")) + "\n")
' >"$work/events.jsonl"
echo "input: $n events with positions and e-mails, $(du -h "$work/events.jsonl" | cut -f1), $(nproc) cores"
rate() { grep -o 'replay, all rules: *[0-9.]* M' | grep -o '[0-9.]*' | tail -1; }
with_out=$("$build/tests/cepheus_bench" "$root/tests/bench/functions/with" "$work/events.jsonl" --out-of-order 2000 --repeat 3)
without_out=$("$build/tests/cepheus_bench" "$root/tests/bench/functions/without" "$work/events.jsonl" --out-of-order 2000 --repeat 3)
echo "== with functions";    echo "$with_out" | grep -E "alerts|replay, all rules|peak"
echo "== without functions"; echo "$without_out" | grep -E "alerts|replay, all rules|peak"
w=$(echo "$with_out" | rate); wo=$(echo "$without_out" | rate)
python3 -c "print('with / without functions: %.2f (%s M events/s against %s M)' % ($w / $wo, '$w', '$wo'))"
