#!/usr/bin/env bash
# Replay with table lookups against the same rules without them (issue 14):
# 1M events of 1M users (cepheus gen), a profiles table of 1M keys and a
# block list of 10 000 cards, the three rules of rules/tables; the baseline is
# those rules with every lookup replaced by a read of the event's own field
# (same shape, same alerts count order, no table). Prints events per second,
# peak RSS of each and the ratios, through farm-bench (medians of paired runs).
#
#   tests/bench/tables_bench.sh [build/cepheus] [events]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cepheus=${1:-$root/build/cepheus}
events=${2:-1000000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$cepheus" gen --events "$events" --users 1000000 --zipf 0 --seed 14 > "$work/events.jsonl"
# Profiles: every user, home country and creation time (epoch ms); block list
# of 10 000 cards. The event fields the baseline reads instead are added to
# each event by the same rule (home_country, created_at, blocked).
python3 - "$work" "$events" <<'PY'
import json, random, sys
work, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(14)
countries = ["FR", "DE", "US", "GB", "BR", "IN", "NL", "IT", "ES", "PL"]
base = 1700000000000
with open(f"{work}/profiles.jsonl", "w") as p:
    for u in range(1, 1000001):
        p.write(json.dumps({"user_id": f"u{u}", "updated_at": 0, "country": countries[u % 10],
                            "created_at": base - rnd.randrange(0, 400) * 86400000}) + "\n")
blocked = set(f"c{rnd.randrange(1, 1000001)}" for _ in range(10000))
with open(f"{work}/blocked.jsonl", "w") as b:
    for c in sorted(blocked):
        b.write(json.dumps({"card_id": c, "blocked_at": 0}) + "\n")
with open(f"{work}/events.jsonl") as src, open(f"{work}/events_flat.jsonl", "w") as dst:
    for line in src:
        e = json.loads(line)
        u = int(e["user_id"][1:]) if e.get("user_id", "u0")[1:].isdigit() else 0
        e["home_country"] = countries[u % 10]
        e["created_at"] = base - 200 * 86400000
        e["blocked"] = e.get("card_id") in blocked
        dst.write(json.dumps(e, separators=(",", ":")) + "\n")
PY
# The baseline rules: the same three, reading the event's own fields.
sed -e 's/profiles\[user_id\]\.created_at/created_at/g' -e 's/profiles\[o\.user_id\]\.created_at/o.created_at/g' \
    -e 's/profiles\[user_id\]\.country/home_country/g' -e 's/profiles\[o\.user_id\]\.country/o.home_country/g' \
    -e 's/card_id in blocked_cards/blocked == true/' -e '/^table /,/^$/d' \
    "$root/rules/tables/reference_data.rules" > "$work/flat.rules"
with_tables="$cepheus replay --quiet --rules $root/rules/tables --events $work/events_flat.jsonl --table profiles=$work/profiles.jsonl --table blocked_cards=$work/blocked.jsonl"
without="$cepheus replay --quiet --rules $work/flat.rules --events $work/events_flat.jsonl"
echo "alerts with tables: $($with_tables | wc -l), without: $($without | wc -l)"
farm-bench -n 5 --timeout 600 --vs "$without" -- $with_tables
