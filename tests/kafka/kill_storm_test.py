#!/usr/bin/env python3
"""A kill -9 storm against a real Kafka broker (reliability test A1).

    kill_storm_test.py CEPHEUS RULES [--events N] [--users U] [--kills K] [--seed S]

Events: `cepheus gen` traffic (fraud planted, 2 s out of order) with a per-user
sequence number added to each event, "seq": 1, 2, 3, ... in the order the
engine takes a user's events (event time, then arrival). The rules are the
shipped ones plus storm_rules/every_event.rules, which alerts on every event
and carries it, seq included.

A daemon reads the topic while a producer keeps feeding it, and is killed with
SIGKILL K times at random points: most after it is ready, some a few
milliseconds after (its first transaction), and every fifth during start-up
before it is ready (inside the rebalance callback: restoring the partitions
from the changelog and LMDB). Wherever the clock falls, some kills land
mid-transaction and some between the Kafka commit and the LMDB commit (the
log's "already published" lines count those). Each start runs with a fake
NOTIFY_SOCKET, and the time from the spawn to READY=1 is its restart-to-ready
time. Then the daemon runs to the end of the input, and a fault-free daemon
(own group, alerts topic and state) reads the same topic: the golden run.
Both end with a 2 s idle timeout, so every event leaves the reorder buffer
and every window closes.

Pass: the read_committed alerts of the storm equal the golden ones as a
multiset of alert ids (0 missing, 0 duplicates); for every user, the
every_event alerts in the alerts topic's order have seq next - current == 1
from 1 to the user's last event; restart-to-ready p99 < 30 s.

Size: 100 000 events of 10 000 users (the spec says 1 M events of 100 k keys;
on 2 shared cores with a broker, a producer and the daemon that would take
tens of minutes, and the storm itself needs the daemon busy rather than a big
backlog). 20 000 are produced before the storm, the other 80 000 at 2500 a
second during it (32 s, about what the 20 starts and kills take), so each
start finds work; 10 000 users give each
sequence some length (about 10 events a user, some hundreds for the Zipf
heads). The whole test takes about 2.5 minutes.
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
from eos_kill_test import (BROKER, Feeder, evaluated, free_port, missing_and_duplicates, read_topic, sh,  # noqa: E402
                           stop_all, write_config)
from testlib import FakeSystemd  # noqa: E402


def sequenced(lines):
    """Adds "seq" to each event: its place among its user's events in (ts, arrival) order."""
    events = [json.loads(l) for l in lines]
    order = sorted(range(len(events)), key=lambda i: (events[i]["user_id"], events[i]["ts"], i))
    seq = {}
    last_user, n = None, 0
    for i in order:
        n = n + 1 if events[i]["user_id"] == last_user else 1
        last_user = events[i]["user_id"]
        seq[i] = n
    out = []
    for i, l in enumerate(lines):
        assert l.endswith("}")
        out.append(f'{events[i]["user_id"]}\t{l[:-1]},"seq":{seq[i]}}}')
    return out


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def main():
    args = sys.argv[1:]
    cepheus, shipped = os.path.abspath(args[0]), os.path.abspath(args[1])
    opt = lambda name, default: int(args[args.index(name) + 1]) if name in args else default
    n_events, users, kills, seed = opt("--events", 100000), opt("--users", 10000), opt("--kills", 20), opt("--seed", 21)
    upfront = n_events // 5
    rng = random.Random(seed)
    work = tempfile.mkdtemp(prefix="cepheus-storm-")
    failures = []
    procs = []
    systemd = None
    ok = False
    try:
        t0 = time.time()
        rules = f"{work}/rules"
        os.makedirs(rules)
        for d in (shipped, os.path.join(HERE, "storm_rules")):
            for f in os.listdir(d):
                if f.endswith(".rules"):
                    shutil.copy(os.path.join(d, f), rules)
        gen = subprocess.run([cepheus, "gen", "--events", str(n_events), "--users", str(users), "--seed", str(seed),
                              "--fraud-rate", "0.01", "--out-of-order", "2s"], check=True, capture_output=True,
                             text=True).stdout.splitlines()
        keyed = sequenced(gen)
        os.makedirs(f"{work}/broker")
        brokers = sh(BROKER, "start", f"{work}/broker").strip()
        for topic, parts in (("events", 4), ("alerts-golden", 1), ("alerts-storm", 1), ("dead-golden", 1),
                             ("dead-storm", 1), ("golden-changelog", 4), ("storm-changelog", 4)):
            sh(BROKER, "topic", f"{work}/broker", topic, str(parts))
        sh(BROKER, "produce", f"{work}/broker", "events", input="\n".join(keyed[:upfront]) + "\n")
        print(f"storm: broker up, {upfront} of {n_events} events ({users} users) produced in "
              f"{time.time() - t0:.1f} s", flush=True)

        # The rest at 2500 a second, through one console producer: about as
        # long as the 20 starts and kills take.
        feeder = Feeder(work, "events", keyed[upfront:], 250)
        procs.append(feeder.proc)
        feeder.start()

        ports = {"golden": free_port(), "storm": free_port()}
        for name in ports:
            write_config(f"{work}/{name}.yaml", work, name, brokers, rules, ports[name])
        systemd = FakeSystemd(f"{work}/notify")
        env = dict(os.environ, NOTIFY_SOCKET=f"{work}/notify")
        log = open(f"{work}/storm.log", "w")
        ready_times = []
        kinds = Counter()
        t1 = time.time()
        for k in range(kills):
            spawned = time.monotonic()
            proc = subprocess.Popen([cepheus, "run", "--config", f"{work}/storm.yaml"], stdout=log, stderr=log,
                                    env=env)
            if (k + 1) % 5 == 0 and ready_times:
                # During start-up: somewhere before the last start's ready time.
                time.sleep(rng.uniform(0.0, max(ready_times[-1] - 0.05, 0.05)))
                ready = systemd.ready_after(spawned)
                kinds["before ready" if ready is None else "just after ready"] += 1
            else:
                ready = None
                while ready is None and time.monotonic() - spawned < 60 and proc.poll() is None:
                    time.sleep(0.01)
                    ready = systemd.ready_after(spawned)
                if ready is None:
                    failures.append(f"start {k + 1} was not ready within 60 s (exit {proc.poll()})")
                    proc.kill()
                    proc.wait()
                    break
                ready_times.append(ready - spawned)
                if rng.random() < 0.25:
                    time.sleep(rng.uniform(0.0, 0.05))  # its first transaction
                    kinds["just after ready"] += 1
                else:
                    time.sleep(rng.uniform(0.1, 1.5))
                    kinds["while processing"] += 1
            if proc.poll() is not None:
                failures.append(f"the daemon stopped by itself (exit {proc.returncode}) before kill {k + 1}")
            read = evaluated(ports["storm"])
            proc.kill()  # SIGKILL: no commit, no flush, no close
            proc.wait()
            print(f"storm: kill -9 #{k + 1} after {time.time() - t1:.1f} s, "
                  f"{'before its metrics were up' if read is None else f'{read:.0f} records read'}", flush=True)
        feeder.wait()
        print(f"storm: {kills} kills in {time.time() - t1:.1f} s ({dict(kinds)}); all {n_events} events produced",
              flush=True)

        # To the end of the input, then the golden run over the same topic.
        # Both with a 2 s idle timeout: once a partition is read to its end
        # its watermark follows the wall clock (years after the events), so
        # its last 2 s of events leave the reorder buffer and every window
        # closes. (Not during the storm: a partition idle for 2 s then would
        # make the events still to come late.)
        for name in ports:
            write_config(f"{work}/{name}.yaml", work, name, brokers, rules, ports[name], idle="2s")
        spawned = time.monotonic()
        code, _ = run_to_end(cepheus, f"{work}/storm.yaml", ports["storm"], log, env)
        ready = systemd.ready_after(spawned)
        if ready is not None:
            ready_times.append(ready - spawned)
        if code != 0:
            failures.append(f"the last storm daemon exited {code}")
        t2 = time.time()
        code, seen = run_to_end(cepheus, f"{work}/golden.yaml", ports["golden"], log, dict(os.environ))
        print(f"storm: golden run read {seen:.0f} events in {time.time() - t2:.1f} s, exit {code}", flush=True)
        if code != 0 or seen < n_events:
            failures.append("the golden run did not finish cleanly")
        log.close()

        golden = [json.loads(l) for l in read_topic(work, "alerts-golden")]
        storm = [json.loads(l) for l in read_topic(work, "alerts-storm")]
        missing, duplicates = missing_and_duplicates([a["alert_id"] for a in golden], [a["alert_id"] for a in storm])
        print(f"storm: golden {len(golden)} alerts, storm {len(storm)}: {missing} missing, {duplicates} duplicates")
        if missing or duplicates or not golden:
            failures.append(f"committed alerts differ from the golden run: {missing} missing, {duplicates} duplicates")

        seqs = defaultdict(list)
        for a in storm:
            if a["rule"] == "every_event":
                seqs[a["key"]].append(a["events"]["e"][0]["seq"])
        expected = Counter(json.loads(l.split("\t", 1)[1])["user_id"] for l in keyed)
        gaps = Counter()
        bad_users = []
        for user, n in expected.items():
            s = seqs.get(user, [])
            gaps.update(b - a for a, b in zip(s, s[1:]))
            if s != list(range(1, n + 1)):
                bad_users.append(user)
        print(f"storm: per-user sequences: {len(seqs)} of {len(expected)} users, "
              f"{sum(len(s) for s in seqs.values())} every_event alerts for {n_events} events, gaps {dict(gaps)}; "
              f"{len(bad_users)} users not exactly 1, 2, ..., their last")
        if bad_users or set(gaps) - {1}:
            failures.append(f"per-user sequence gaps other than 1: {dict(gaps)}, users {bad_users[:5]}")

        text = open(f"{work}/storm.log").read()
        print(f"storm: {text.count('already published')} partition restores after a crash between the Kafka and "
              f"the LMDB commit; {text.count('state restored from the changelog')} roll-forwards from the changelog")
        p50, p99 = percentile(ready_times, 50), percentile(ready_times, 99)
        print(f"storm: restart to READY=1 over {len(ready_times)} starts: p50 {p50:.2f} s, p99 {p99:.2f} s, "
              f"max {max(ready_times):.2f} s")
        if p99 >= 30:
            failures.append(f"restart-to-ready p99 {p99:.1f} s is not under 30 s")
        ok = not failures
    finally:
        if systemd is not None:
            systemd.stop()
        stop_all(work, procs)
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"storm: logs kept in {work}")
    return failures


def run_to_end(cepheus, config, port, log, env):
    """Runs a daemon until it has read nothing for 10 s (so the idle timeout has closed every window), then
    SIGTERM; its exit code and the records it read."""
    proc = subprocess.Popen([cepheus, "run", "--config", config], stdout=log, stderr=log, env=env)
    last, last_change = -1, time.time()
    while time.time() - last_change < 10 and proc.poll() is None:
        time.sleep(1)
        n = evaluated(port)
        if n is not None and n != last:
            last, last_change = n, time.time()
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=60), last


if __name__ == "__main__":
    problems = main()
    for p in problems:
        print("FAIL:", p)
    print("storm: 0 passed, 1 failed" if problems else "storm: 1 passed, 0 failed")
    sys.exit(1 if problems else 0)
