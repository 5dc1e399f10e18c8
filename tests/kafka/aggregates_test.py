#!/usr/bin/env python3
"""Counters and aggregates (sections 6.2, 6.3) against a real Kafka broker:
the daemon's committed window records and alerts equal `cepheus replay
--aggregates` over the same events, through SIGKILLs mid-window.

    aggregates_test.py CEPHEUS RULES_DIR [--events N] [--seed S] [--kills K]

The events are rekey_test.py's (cepheus gen, shared cards and rings, unique
times, an hour-later heartbeat on every partition, which closes every window),
fed to a 4-partition topic keyed by user_id over ~15 s. The rules (a
counter by card, re-keyed, one by user, direct; a tumbling aggregate by
category and a hopping one by country, both re-keyed) run in one daemon that
is killed with SIGKILL K times mid-stream and restarted each time (static
membership: it takes its partitions back at once). Its committed records
(read_committed, the aggregates topic) must equal replay's as multisets of
exact JSON texts, and its alerts replay's: 0 missing, 0 duplicated.
About 2 minutes.
"""
from collections import Counter
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from eos_kill_test import (BROKER, Feeder, missing_and_duplicates, read_topic, reduce_alert,  # noqa: E402
                           sh, start, stop_all, wait_until_read)
from rekey_test import events, settle, write_config  # noqa: E402
sys.path.insert(0, os.path.join(HERE, ".."))
from testlib import cold_keys_seen, free_port  # noqa: E402


def config(path, work, brokers, rules, port):
    """rekey_test's configuration, with the aggregates topic."""
    write_config(path, work, brokers, rules, port, "agg", "agg", "events")
    text = open(path).read().replace("  alerts_topic: alerts-agg\n",
                                     "  alerts_topic: alerts-agg\n  aggregates_topic: records-agg\n")
    with open(path, "w") as f:
        f.write(text)


def main():
    args = sys.argv[1:]
    cepheus, rules = os.path.abspath(args[0]), os.path.abspath(args[1])
    opt = lambda name, default: int(args[args.index(name) + 1]) if name in args else default
    n_events, seed, kills = opt("--events", 30000), opt("--seed", 23), opt("--kills", 2)
    rng = random.Random(seed)
    work = tempfile.mkdtemp(prefix="cepheus-aggregates-")
    procs, ok = [], False
    try:
        t0 = time.time()
        os.makedirs(f"{work}/broker")
        brokers = sh(BROKER, "start", f"{work}/broker").strip()
        for topic, parts in (("events", 4), ("alerts-agg", 1), ("records-agg", 1), ("dead-agg", 1),
                             ("agg-changelog", 4)):
            sh(BROKER, "topic", f"{work}/broker", topic, str(parts))
        texts = events(cepheus, n_events, seed, rng)
        with open(f"{work}/events.jsonl", "w") as f:
            f.writelines(t + "\n" for t in texts)
        lines = [f"{json.loads(t)['user_id']}\t{t}" for t in texts]
        replay = subprocess.run([cepheus, "replay", "--rules", rules, "--events", f"{work}/events.jsonl",
                                 "--out-of-order", "3s", "--quiet", "--aggregates", f"{work}/records.jsonl"],
                                check=True, capture_output=True)
        golden = [reduce_alert(json.loads(l)) for l in replay.stdout.split(b"\n") if l.strip()]
        golden_records = [l.rstrip("\n") for l in open(f"{work}/records.jsonl") if l.strip()]
        by_rule = Counter(a[0] for a in golden)
        print(f"aggregates: broker up and {len(lines)} events ready in {time.time() - t0:.1f} s; replay: "
              f"{len(golden)} alerts {dict(by_rule)}, {len(golden_records)} window records", flush=True)
        log = open(f"{work}/daemon.log", "w")
        port = free_port()
        config(f"{work}/agg.yaml", work, brokers, rules, port)
        proc = start(cepheus, f"{work}/agg.yaml", log)
        procs.append(proc)
        feeder = Feeder(work, "events", lines, len(lines) // 150 + 1)
        procs.append(feeder.proc)
        wait_until_read(port, 0, timeout=60, proc=proc)
        feeder.start()
        killed_mid_stream = 0
        for k in range(kills):
            time.sleep(rng.uniform(2.5, 5.0))
            killed_mid_stream += feeder.thread.is_alive()
            proc.kill()
            proc.wait()
            print(f"aggregates: kill -9 #{k + 1} after {time.time() - t0:.1f} s", flush=True)
            proc = start(cepheus, f"{work}/agg.yaml", log)
            procs.append(proc)
        feeder.wait()
        settle(port, quiet=15)
        cold_ok, cold_what = cold_keys_seen(port)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        log.close()
        got = [reduce_alert(json.loads(l)) for l in read_topic(work, "alerts-agg")]
        got_records = [l.decode() for l in read_topic(work, "records-agg")]
        missing, duplicates = missing_and_duplicates(golden, got)
        r_missing, r_duplicates = missing_and_duplicates(golden_records, got_records)
        fired = {a[0] for a in got if a[2] == "aggregate"}
        print(f"aggregates: alerts {len(got)} against replay's {len(golden)}: {missing} missing, {duplicates} "
              f"duplicated; window records {len(got_records)} against {len(golden_records)}: {r_missing} missing, "
              f"{r_duplicates} duplicated; aggregates that alerted: {sorted(fired)}; exit {code} {cold_what}", flush=True)
        if r_missing or r_duplicates:
            w, g = Counter(golden_records), Counter(got_records)
            print(f"aggregates: e.g. missing {list((w - g).elements())[:2]}, extra {list((g - w).elements())[:2]}")
        ok = (code == 0 and cold_ok and missing == 0 and duplicates == 0 and r_missing == 0 and r_duplicates == 0
              and killed_mid_stream == kills and len(golden_records) > 100
              and {"sales_per_minute", "country_logins"} <= fired)
    finally:
        stop_all(work, procs)
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"aggregates: FAILED; logs kept in {work}")
    print("aggregates: 1 passed, 0 failed" if ok else "aggregates: 0 passed, 1 failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
