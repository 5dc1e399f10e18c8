#!/usr/bin/env python3
"""Counters and aggregates (sections 6.2, 6.3): what they cost `cepheus replay`.

    tests/bench/counters_bench.py CEPHEUS [--events N] [--rounds K]

One input (N events of `cepheus gen`, 20 000 users, seed 335, default 1M)
and three rule sets, run K rounds (default 3) in turn, so all see the same
machine drift:

  base       the six v1 rules of rules/ (no counter, no aggregate);
  counters   the same, plus three counters (a count by user, a sum by card,
             a distinct by user, over 1h at 1m: 60 buckets) and two aggregates
             (sales by category every 5 minutes, logins by country over 15
             minutes every 5), one rule reading a counter;
  long       `counters` with each counter's `over` 100 times longer at the
             same resolution (6000 buckets).

Prints, per set, the median events per CPU-second (user + system of the
replay process) and its peak RSS, and the ratios counters/base and
long/counters: the second must stay near 1, since a counter's cost per
event does not depend on its `over` (two-stack sliding window).
"""
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile

V1_RULES = ["account_takeover", "card_testing", "login_country_jump", "multi_country_orders", "spend_velocity",
            "unpaid_order"]

DECLARATIONS = """
counter orders_per_user_{over}
  key user_id
  count order
  over {over}
  resolution 1m

counter spend_per_card_{over}
  key card_id
  sum payment.amount
  over {over}
  resolution 1m

counter countries_per_user_{over}
  key user_id
  distinct (order|login).country
  over {over}
  resolution 1m

rule busy_buyer_{over}
  key user_id
  match o: order[orders_per_user_{over} > 30 and countries_per_user_{over} >= 3]
  within 1m
  cooldown 1h

aggregate sales_per_category
  from order[amount > 0]
  group by category
  window tumbling 5m
  compute total = sum(amount), orders = count(), buyers = distinct(user_id)
  alert when total > 3 * previous_avg(total, 12) and orders >= 20

aggregate logins_per_country
  from login
  group by country
  window hopping 15m every 5m
  compute users = distinct(user_id), attempts = count()
  alert when attempts > 2 * previous_max(attempts, 3)
"""


def rule_set(root, work, name, over):
    d = os.path.join(work, name)
    os.makedirs(d)
    for r in V1_RULES:
        shutil.copy(os.path.join(root, "rules", r + ".rules"), d)
    if over:
        with open(os.path.join(d, "extra.rules"), "w") as f:
            f.write(DECLARATIONS.format(over=over))
    return d


def run(cepheus, rules, events, n):
    """Events per CPU-second and peak RSS (MiB) of one replay."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(os.devnull, "w") as out:
        subprocess.run([cepheus, "replay", "--rules", rules, "--events", events, "--out-of-order", "2s",
                        "--aggregates", os.devnull, "--quiet"], stdout=out, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return n / cpu, after.ru_maxrss / 1024


def main():
    args = sys.argv[1:]
    cepheus = os.path.abspath(args[0])
    opt = lambda name, default: int(args[args.index(name) + 1]) if name in args else default
    n, rounds = opt("--events", 1000000), opt("--rounds", 3)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    work = tempfile.mkdtemp(prefix="cepheus-counters-bench-")
    try:
        events = os.path.join(work, "events.jsonl")
        with open(events, "w") as f:
            subprocess.run([cepheus, "gen", "--events", str(n), "--users", "20000", "--seed", "335"], stdout=f,
                           stderr=subprocess.DEVNULL, check=True)
        sets = {"base": rule_set(root, work, "base", None), "counters": rule_set(root, work, "counters", "1h"),
                "long": rule_set(root, work, "long", "100h")}
        rates = {k: [] for k in sets}
        # Peak RSS per set: each measured alone (RUSAGE_CHILDREN keeps the
        # largest child so far, so the sets run in order of their footprint).
        rss = {}
        for k in ("base", "counters", "long"):
            rss[k] = run(cepheus, sets[k], events, n)[1]
        for _ in range(rounds):
            for k, d in sets.items():
                rates[k].append(run(cepheus, d, events, n)[0])
        med = {k: statistics.median(v) for k, v in rates.items()}
        for k in sets:
            print(f"{k:9s} {med[k] / 1000:8.0f}k events per CPU-second (median of {rounds}: "
                  f"{', '.join(f'{r / 1000:.0f}k' for r in rates[k])}), peak RSS {rss[k]:.0f} MiB")
        print(f"counters/base {med['counters'] / med['base']:.2f}   long/counters (100x over) "
              f"{med['long'] / med['counters']:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
