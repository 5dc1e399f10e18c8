#!/usr/bin/env python3
"""Tables (section 6.1) against a real Kafka broker: the daemon's committed
alerts equal `cepheus replay` with the same table files, through kills.

    tables_test.py CEPHEUS RULES_DIR [--events N] [--seed S]

Starts a broker (tests/kafka/broker.sh) and fills:

  profiles       4 partitions: one record per generated user (a home country
                 and an account creation time), a second version for a third
                 of them timed inside the events' time range, 300 000 records
                 of users the events never name (so reading the table takes a
                 while), and one record that is not JSON;
  blocked_cards  1 partition: 40 cards blocked at times inside the range, 10
                 of them unblocked later ("deleted": true);
  events         4 partitions (one such topic per run), fed over ~20 s: N
                 generated events (`cepheus gen`), then a "heartbeat" event
                 an hour later on every partition, so every partition's
                 watermark passes every real event (no rule reads heartbeats).

The same records, as JSON-lines files, go to `cepheus replay --table`. Then:

  killed  one daemon killed with SIGKILL while it reads the tables before
          READY (before its first table commit), restarted, killed again
          while it processes events, restarted (the tables now come from its
          state directory), and left to finish;
  joined  a daemon A alone, then a daemon B joining the group (static
          membership): B reads every table itself and serves the lookups of
          the partitions it takes over.

Each run's committed alerts (read_committed) must equal replay's, by rule,
key, reason and bound event ids: 0 missing, 0 duplicated. The not-JSON table
record must be in each run's dead-letter topic. About 3 minutes.
"""
import json
import os
import random
import re
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
from testlib import free_port, samples, scrape  # noqa: E402

START = 1700000000000  # `cepheus gen`'s first event time
COUNTRIES = ["FR", "DE", "US", "GB", "BR", "IN", "ES", "IT", "NL", "PL"]


def write_config(path, work, brokers, rules, port, group, member, topic):
    with open(path, "w") as f:
        f.write(f"""rules:
  path: {rules}
events:
  out_of_order: 2s
  idle_timeout: 1d          # no wall-clock watermark: the output depends on the input only
  max_future_skew: 36500d
kafka:
  brokers: {brokers}
  group_id: {group}
  input_topics: [{topic}]
  alerts_topic: alerts-{group}
  dead_letter_topic: dead-{group}
  changelog_topic: {group}-changelog
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
tables:
  profiles: {{topic: profiles}}
  blocked_cards: {{topic: blocked_cards}}
log:
  level: info
""")


def table_records(rng, users, span_ms):
    """(profiles, blocked_cards): lists of (key, JSON text), in production order."""
    profiles = []
    for u in range(1, users + 1):
        created = START - rng.randrange(0, 3 * 86400000)
        profiles.append((f"u{u}", json.dumps({"user_id": f"u{u}", "country": rng.choice(COUNTRIES),
                                              "created_at": created, "updated_at": 0})))
        if rng.random() < 1 / 3:
            profiles.append((f"u{u}", json.dumps({"user_id": f"u{u}", "country": rng.choice(COUNTRIES),
                                                  "created_at": created,
                                                  "updated_at": START + rng.randrange(0, span_ms)})))
    for u in range(100000, 400000):  # users the events never name
        profiles.append((f"u{u}", json.dumps({"user_id": f"u{u}", "country": "FR", "created_at": 0,
                                              "updated_at": 0, "pad": "x" * 40})))
    profiles.insert(len(profiles) // 2, ("broken", "not json"))
    blocked = []
    for u in rng.sample(range(1, users + 1), 40):
        at = START + rng.randrange(0, span_ms)
        blocked.append((f"c{u}", json.dumps({"card_id": f"c{u}", "blocked_at": at})))
        if len(blocked) % 4 == 0:
            blocked.append((f"c{u}", json.dumps({"card_id": f"c{u}", "blocked_at": at + rng.randrange(1, span_ms),
                                                 "deleted": True})))
    return profiles, blocked


def produce(work, topic, records, jsonl=True):
    with open(f"{work}/{topic}.tsv", "w") as f:
        f.writelines(f"{k}\t{v}\n" for k, v in records)
    with open(f"{work}/{topic}.tsv") as f:
        subprocess.run([BROKER, "produce", f"{work}/broker", topic], stdin=f, check=True, capture_output=True)
    if jsonl:
        with open(f"{work}/{topic}.jsonl", "w") as f:  # for replay: the records only
            f.writelines(v + "\n" for _, v in records)


def log_has(path, pattern):
    with open(path) as f:
        return re.search(pattern, f.read()) is not None


def kill_during_bootstrap(cepheus, config, log_path):
    """Starts a daemon and kills it (SIGKILL) while it reads its tables:
    after it says it is loading them and before it says it read profiles.
    True when the kill landed there."""
    offset = os.path.getsize(log_path)
    with open(log_path, "a") as log:
        proc = start(cepheus, config, log)
    deadline = time.time() + 60
    while time.time() < deadline:
        with open(log_path) as f:
            f.seek(offset)
            text = f.read()
        if "loading the rules' tables" in text:
            break
        time.sleep(0.02)
    time.sleep(0.3)
    with open(log_path) as f:
        f.seek(offset)
        done = re.search(r"table profiles: .* records read", f.read()) is not None
    proc.kill()
    proc.wait()
    return not done


def kill_while_processing(cepheus, config, port, log_path, rng):
    """Starts a daemon, waits until it has read events, kills it (SIGKILL)
    after a random delay. Returns the events read at the last scrape."""
    with open(log_path, "a") as log:
        proc = start(cepheus, config, log)
    deadline, n = time.time() + 90, None
    while time.time() < deadline:
        n = evaluated(port)
        if n:
            break
        time.sleep(0.05)
    time.sleep(rng.uniform(3.0, 6.0))
    n = evaluated(port) or n
    proc.kill()
    proc.wait()
    return n


def finish(proc, port, expected):
    wait_until_read(port, expected, timeout=300, proc=proc)
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=60)


def compare(work, group, golden):
    got = [reduce_alert(json.loads(l)) for l in read_topic(work, f"alerts-{group}")]
    dead = [l for l in read_topic(work, f"dead-{group}") if l == b"not json"]
    missing, duplicates = missing_and_duplicates(golden, got)
    print(f"tables: {group}: {len(got)} alerts against replay's {len(golden)}: {missing} missing, "
          f"{duplicates} duplicated; the table's bad record in the dead-letter topic {len(dead)} time(s)", flush=True)
    return missing == 0 and duplicates == 0 and len(dead) >= 1


def main():
    args = sys.argv[1:]
    cepheus, rules = os.path.abspath(args[0]), os.path.abspath(args[1])
    opt = lambda name, default: int(args[args.index(name) + 1]) if name in args else default
    n_events, seed, users = opt("--events", 40000), opt("--seed", 11), 2000
    rng = random.Random(seed)
    work = tempfile.mkdtemp(prefix="cepheus-tables-")
    procs, ok = [], False
    try:
        t0 = time.time()
        os.makedirs(f"{work}/broker")
        brokers = sh(BROKER, "start", f"{work}/broker").strip()
        for topic, parts in (("events", 4), ("events-joined", 4), ("profiles", 4), ("blocked_cards", 1), ("alerts-killed", 1),
                             ("dead-killed", 1), ("killed-changelog", 4), ("alerts-joined", 1), ("dead-joined", 1),
                             ("joined-changelog", 4)):
            sh(BROKER, "topic", f"{work}/broker", topic, str(parts))
        gen = ["gen", "--events", str(n_events), "--users", str(users), "--seed", str(seed), "--fraud-rate", "0.02",
               "--out-of-order", "2s"]
        with open(f"{work}/events.jsonl", "w") as f:
            subprocess.run([cepheus] + gen, check=True, stdout=f, stderr=subprocess.DEVNULL)
        last_ts = max(json.loads(l)["ts"] for l in open(f"{work}/events.jsonl"))
        # A heartbeat an hour after the last event, on every partition (2000
        # keys cover the 4), moves every partition's watermark past the events.
        with open(f"{work}/events.jsonl", "a") as f:
            f.writelines(json.dumps({"type": "heartbeat", "ts": last_ts + 3600000, "user_id": f"u{u}"}) + "\n"
                         for u in range(1, users + 1))
        with open(f"{work}/events.jsonl") as f:  # fed to each run's topic over ~20 s, keyed by user
            lines = [f"{json.loads(l)['user_id']}\t{l.rstrip()}" for l in f if l.strip()]
        profiles, blocked = table_records(rng, users, last_ts - START)
        produce(work, "profiles", profiles)
        produce(work, "blocked_cards", blocked)
        total = len(lines)
        print(f"tables: broker up, {total} events, {len(profiles)} profile and {len(blocked)} block-list records "
              f"produced in {time.time() - t0:.1f} s", flush=True)

        replay = subprocess.run([cepheus, "replay", "--rules", rules, "--events", f"{work}/events.jsonl",
                                 "--out-of-order", "2s", "--table", f"profiles={work}/profiles.jsonl",
                                 "--table", f"blocked_cards={work}/blocked_cards.jsonl", "--quiet"],
                                check=True, capture_output=True)
        golden = [reduce_alert(json.loads(l)) for l in replay.stdout.split(b"\n") if l.strip()]
        by_rule = {}
        for a in golden:
            by_rule[a[0]] = by_rule.get(a[0], 0) + 1
        print(f"tables: replay: {len(golden)} alerts {by_rule}", flush=True)

        # killed: SIGKILL during the table bootstrap, then during processing.
        t1 = time.time()
        log_path = f"{work}/daemons.log"
        open(log_path, "w").close()
        port = free_port()
        write_config(f"{work}/killed.yaml", work, brokers, rules, port, "killed", "killed", "events")
        in_bootstrap = kill_during_bootstrap(cepheus, f"{work}/killed.yaml", log_path)
        print(f"tables: killed: kill -9 #1 {'during' if in_bootstrap else 'after'} the table bootstrap "
              f"({time.time() - t1:.1f} s)", flush=True)
        feeder = Feeder(work, "events", lines, len(lines) // 200 + 1)
        procs.append(feeder.proc)
        feeder.start()
        read = kill_while_processing(cepheus, f"{work}/killed.yaml", port, log_path, rng)
        print(f"tables: killed: kill -9 #2 while processing, {read:.0f} of {total} events read "
              f"({time.time() - t1:.1f} s)", flush=True)
        with open(log_path, "a") as log:
            proc = start(cepheus, f"{work}/killed.yaml", log)
        procs.append(proc)
        feeder.wait()
        code = finish(proc, port, total)
        kept = re.findall(r"table profiles: (\d+) versions kept from the last run, (\d+) records read", open(log_path).read())
        print(f"tables: killed: finished in {time.time() - t1:.1f} s, exit {code}; profiles at each start "
              f"(kept, read): {kept}", flush=True)
        killed_ok = compare(work, "killed", golden) and code == 0 and in_bootstrap and 0 < read < total
        # The last start read the tables from the state directory, not the topic.
        killed_ok = killed_ok and len(kept) >= 2 and int(kept[-1][0]) > 0 and int(kept[-1][1]) < len(profiles) // 2

        # joined: the same events fed over ~20 s; B joins A's group midway and
        # serves the lookups of the partitions it takes over.
        t2 = time.time()
        ports = {"a": free_port(), "b": free_port()}
        for m in ports:
            write_config(f"{work}/{m}.yaml", work, brokers, rules, ports[m], "joined", f"joined-{m}", "events-joined")
        feeder = Feeder(work, "events-joined", lines, len(lines) // 200 + 1)
        procs.append(feeder.proc)
        with open(log_path, "a") as log:
            a = start(cepheus, f"{work}/a.yaml", log)
            procs.append(a)
            wait_until_read(ports["a"], 0, timeout=120, proc=a)  # A is up
            feeder.start()
            time.sleep(rng.uniform(4.0, 7.0))
            b = start(cepheus, f"{work}/b.yaml", log)
            procs.append(b)
        feeder.wait()
        wait_until_read(ports["b"], 1, timeout=120, proc=b)
        deadline = time.time() + 300
        while time.time() < deadline:
            n = (evaluated(ports["a"]) or 0) + (evaluated(ports["b"]) or 0)
            if n >= total:
                break
            time.sleep(1)
        time.sleep(2)
        b_lookups = samples(scrape(ports["b"])).get('cepheus_table_keys{table="profiles"}', 0)
        b_read = evaluated(ports["b"]) or 0
        for p in (a, b):
            p.send_signal(signal.SIGTERM)
        codes = [a.wait(timeout=60), b.wait(timeout=60)]
        print(f"tables: joined: finished in {time.time() - t2:.1f} s, exits {codes}; B read {b_read:.0f} events "
              f"and holds {b_lookups:.0f} profiles", flush=True)
        joined_ok = (compare(work, "joined", golden) and codes == [0, 0] and b_read > 0
                     and b_lookups >= users)
        ok = killed_ok and joined_ok
    finally:
        stop_all(work, procs)
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"tables: FAILED; logs kept in {work}")
    print("tables: 1 passed, 0 failed" if ok else "tables: 0 passed, 1 failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
