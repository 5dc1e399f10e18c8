#!/usr/bin/env python3
"""Re-keying (section 6.4) against a real Kafka broker: rules keyed on
card_id, device_id and user_id over an input partitioned by user_id; the
daemon's committed alerts equal `cepheus replay` over the same events.

    rekey_test.py CEPHEUS RULES_DIR [--events N] [--seed S]

The events are `cepheus gen`'s, with a device_id shared by several users,
3 % of orders and payments on one of 20 cards shared across users (so a
card's pattern spans input partitions), rings of 4 users paying with one
card within minutes, times made unique (ties across partitions have no
order), and a heartbeat an hour after the last event on every partition.
They are fed to a 4-partition topic keyed by user_id over ~15 s.

  one   one daemon with kafka.rekey: true (it creates the re-keying topics
        through the Admin API);
  two   daemon A, then B joining its group, then A killed with SIGKILL
        mid-stream: B takes A's input and re-keying partitions (static
        membership: after the session timeout) with their state and marks.

Each run's committed alerts (read_committed) must equal replay's by rule,
key, reason and bound event ids, and include alerts of both re-keyed
fields: 0 missing, 0 duplicated. About 3 minutes.
"""
import json
from collections import Counter
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
from eos_kill_test import (BROKER, Feeder, evaluated, missing_and_duplicates, read_topic, reduce_alert,  # noqa: E402
                           sh, start, stop_all, wait_until_read)
sys.path.insert(0, os.path.join(HERE, ".."))
from testlib import cold_keys_seen, free_port  # noqa: E402


def write_config(path, work, brokers, rules, port, group, member, topic):
    with open(path, "w") as f:
        f.write(f"""rules:
  path: {rules}
events:
  out_of_order: 3s
  idle_timeout: 1d          # no wall-clock watermark: the output depends on the input only
  max_future_skew: 36500d
kafka:
  brokers: {brokers}
  group_id: {group}
  input_topics: [{topic}]
  partition_key: user_id
  rekey: true
  alerts_topic: alerts-{group}
  dead_letter_topic: dead-{group}
  transactional_id: {member}
  consumer:
    group.instance.id: {member}-1
    session.timeout.ms: "10000"
  producer:
    transaction.timeout.ms: "10000"
state:
  directory: {work}/state-{member}
  map_size: 256MiB
  commit_interval: 200ms
metrics:
  listen: 127.0.0.1:{port}
log:
  level: info
""")


def events(cepheus, n, seed, rng):
    """The test's events, as JSON texts in production order."""
    out = subprocess.run([cepheus, "gen", "--events", str(n), "--users", "2000", "--seed", str(seed),
                          "--fraud-rate", "0.02", "--out-of-order", "2s"], check=True, capture_output=True, text=True)
    evs = [json.loads(l) for l in out.stdout.splitlines() if l.strip()]
    for e in evs:
        user = int(e["user_id"][1:])
        e["device_id"] = f"d{(user * 7919) % 400}"
        if e["type"] in ("order", "payment") and rng.random() < 0.03:
            e["card_id"] = f"shared{rng.randrange(20)}"
    # Rings: 4 random users (so, most likely, on several partitions) pay
    # with one card 20 s apart; each payment goes where its time falls.
    for ring in range(8):
        t0 = evs[rng.randrange(len(evs) // 10, len(evs) - len(evs) // 10)]["ts"]
        for k, user in enumerate(rng.sample(range(1, 2001), 4)):
            ts = t0 + 20000 * k
            at = next(i for i, e in enumerate(evs) if e["ts"] > ts)
            evs.insert(at, {"id": f"ring{ring}-{k}", "type": "payment", "ts": ts, "user_id": f"u{user}",
                            "card_id": f"ring{ring}", "amount": 50, "order_id": f"ring{ring}-{k}", "country": "FR",
                            "method": "card", "device_id": f"d{(user * 7919) % 400}"})
    used = set()
    for e in evs:  # unique times: ties across partitions have no defined order
        while e["ts"] in used:
            e["ts"] += 1
        used.add(e["ts"])
    last = max(e["ts"] for e in evs)
    evs += [{"type": "heartbeat", "ts": last + 3600000, "user_id": f"u{u}"} for u in range(1, 2001)]
    return [json.dumps(e) for e in evs]


def settle(port, quiet=10, limit=300):
    """Until the daemon behind `port` has read nothing (input and re-keying
    records alike) for `quiet` seconds."""
    start, last, last_change = time.time(), -1, time.time()
    while time.time() - last_change < quiet and time.time() - start < limit:
        time.sleep(1)
        n = evaluated(port)
        if n is not None and n != last:
            last, last_change = n, time.time()


def compare(work, group, golden):
    got = [reduce_alert(json.loads(l)) for l in read_topic(work, f"alerts-{group}")]
    missing, duplicates = missing_and_duplicates(golden, got)
    fields = sorted({a[0] for a in got})
    print(f"rekey: {group}: {len(got)} alerts against replay's {len(golden)}: {missing} missing, {duplicates} "
          f"duplicated; rules that fired: {fields}", flush=True)
    if missing or duplicates:
        w, g = Counter(golden), Counter(got)
        for name, diff in (("missing", w - g), ("extra", g - w)):
            by_rule = Counter(a[0] for a in diff.elements())
            print(f"rekey: {group}: {name} by rule: {dict(by_rule)}; e.g. {list(diff.elements())[:3]}", flush=True)
    return missing == 0 and duplicates == 0


def main():
    args = sys.argv[1:]
    cepheus, rules = os.path.abspath(args[0]), os.path.abspath(args[1])
    opt = lambda name, default: int(args[args.index(name) + 1]) if name in args else default
    n_events, seed = opt("--events", 30000), opt("--seed", 17)
    rng = random.Random(seed)
    work = tempfile.mkdtemp(prefix="cepheus-rekey-")
    procs, ok = [], False
    try:
        t0 = time.time()
        os.makedirs(f"{work}/broker")
        brokers = sh(BROKER, "start", f"{work}/broker").strip()
        for topic, parts in (("events-one", 4), ("events-two", 4), ("alerts-one", 1), ("dead-one", 1),
                             ("one-changelog", 4), ("alerts-two", 1), ("dead-two", 1), ("two-changelog", 4)):
            sh(BROKER, "topic", f"{work}/broker", topic, str(parts))
        texts = events(cepheus, n_events, seed, rng)
        with open(f"{work}/events.jsonl", "w") as f:
            f.writelines(t + "\n" for t in texts)
        lines = [f"{json.loads(t)['user_id']}\t{t}" for t in texts]
        total = len(lines)
        replay = subprocess.run([cepheus, "replay", "--rules", rules, "--events", f"{work}/events.jsonl",
                                 "--out-of-order", "3s", "--quiet"], check=True, capture_output=True)
        golden = [reduce_alert(json.loads(l)) for l in replay.stdout.split(b"\n") if l.strip()]
        by_rule = {}
        for a in golden:
            by_rule[a[0]] = by_rule.get(a[0], 0) + 1
        print(f"rekey: broker up and {total} events ready in {time.time() - t0:.1f} s; replay: {len(golden)} "
              f"alerts {by_rule}", flush=True)
        log = open(f"{work}/daemons.log", "w")

        # one: a single daemon.
        t1 = time.time()
        port = free_port()
        write_config(f"{work}/one.yaml", work, brokers, rules, port, "one", "one", "events-one")
        proc = start(cepheus, f"{work}/one.yaml", log)
        procs.append(proc)
        feeder = Feeder(work, "events-one", lines, len(lines) // 150 + 1)
        procs.append(feeder.proc)
        wait_until_read(port, 0, timeout=60, proc=proc)
        feeder.start()
        feeder.wait()
        settle(port)
        cold_ok, cold_what = cold_keys_seen(port)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        print(f"rekey: one: finished in {time.time() - t1:.1f} s, exit {code} {cold_what}", flush=True)
        one_ok = compare(work, "one", golden) and code == 0 and cold_ok

        # two: A, B joins, A killed.
        t2 = time.time()
        ports = {"a": free_port(), "b": free_port()}
        for m in ports:
            write_config(f"{work}/{m}.yaml", work, brokers, rules, ports[m], "two", f"two-{m}", "events-two")
        a = start(cepheus, f"{work}/a.yaml", log)
        procs.append(a)
        feeder = Feeder(work, "events-two", lines, len(lines) // 150 + 1)
        procs.append(feeder.proc)
        wait_until_read(ports["a"], 0, timeout=60, proc=a)
        feeder.start()
        time.sleep(rng.uniform(3.0, 5.0))
        b = start(cepheus, f"{work}/b.yaml", log)
        procs.append(b)
        time.sleep(rng.uniform(3.0, 5.0))
        mid_stream = feeder.thread.is_alive()
        a.kill()
        a.wait()
        print(f"rekey: two: B joined, A killed with SIGKILL after {time.time() - t2:.1f} s "
              f"({'while' if mid_stream else 'after'} the events were fed)", flush=True)
        feeder.wait()
        settle(ports["b"], quiet=25)  # A's partitions come to B after its session timeout
        b.send_signal(signal.SIGTERM)
        code_b = b.wait(timeout=60)
        print(f"rekey: two: finished in {time.time() - t2:.1f} s, B exit {code_b}", flush=True)
        two_ok = compare(work, "two", golden) and code_b == 0 and mid_stream
        log.close()
        fired = {a[0] for a in golden}
        text = open(f"{work}/daemons.log").read()
        created = [f"creating the re-keying topic {g}-rekey-{f} with 4 partitions" in text
                   for g in ("one", "two") for f in ("card_id", "device_id")]
        print(f"rekey: re-keying topics created by the daemons: {sum(created)} of 4", flush=True)
        ok = (one_ok and two_ok and all(created)
              and {"many_accounts_one_card", "device_shared_login_then_order"} <= fired)
    finally:
        stop_all(work, procs)
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"rekey: FAILED; logs kept in {work}")
    print("rekey: 1 passed, 0 failed" if ok else "rekey: 0 passed, 1 failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
