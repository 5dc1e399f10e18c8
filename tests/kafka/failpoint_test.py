#!/usr/bin/env python3
"""A crash on either side of the Kafka commit (reliability test A3), against a
real Kafka broker.

    failpoint_test.py CEPHEUS RULES [--events N] [--seed S] [--at N]

A commit writes the Kafka transaction (alerts, changelog, consumed offsets)
first and the LMDB batch after it. `cepheus run --crash-at POINT:N` kills the
daemon with SIGKILL at its Nth commit, at POINT:

  after-kafka-commit   Kafka holds batch N, LMDB does not. The group's
                       committed offset G is past LMDB's offset L, and the
                       committed changelog shows exactly one transaction past
                       L, whose offset is G. The restart must roll LMDB forward
                       from the changelog (the log says so).
  before-kafka-commit  Neither holds batch N: LMDB never holds a batch Kafka
                       did not commit, so L == G and no committed changelog
                       offset is past L.

For each point, on a one-partition topic a producer fills at 4000 events/s:
the daemon dies at commit N (exit by SIGKILL, a log line naming the
failpoint), the offsets are checked as above, then a restart without the
failpoint reads the rest, and the committed alerts of both runs
(read_committed) equal `cepheus replay` over the same events: 0 missing, 0
duplicates. The mock cluster cannot show this: it drops transactional offset
commits (librdkafka 2.0.2).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from enospc_test import changelog_offsets, group_offsets, lmdb_offsets  # noqa: E402
from eos_kill_test import (BROKER, evaluated, free_port, missing_and_duplicates, read_topic, reduce_alert, sh,  # noqa: E402
                           stop_all, write_config)


def crash_and_recover(cepheus, rules, work, brokers, events, gen, golden, point, at, procs):
    """Runs one failpoint; returns the failures found."""
    name = "fp-" + point.split("-")[0]  # fp-after, fp-before
    topic = f"events-{name}"
    for t in (topic, f"alerts-{name}", f"dead-{name}", f"{name}-changelog"):
        sh(BROKER, "topic", f"{work}/broker", t, "1")
    failures = []
    port = free_port()
    config = f"{work}/{name}.yaml"
    write_config(config, work, name, brokers, rules, port, topic=topic)
    log_path = f"{work}/{name}-first.log"
    with open(log_path, "w") as log:
        first = subprocess.Popen([cepheus, "run", "--config", config, "--crash-at", f"{point}:{at}"], stdout=log,
                                 stderr=log)
        procs.append(first)
        deadline = time.time() + 60
        while time.time() < deadline and first.poll() is None and "ready: " not in open(log_path).read():
            time.sleep(0.2)
        feeder = subprocess.Popen([cepheus, "gen", "--kafka", brokers, "--topic", topic, "--rate", "4000", *gen],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(feeder)
        try:
            code = first.wait(timeout=120)
        except subprocess.TimeoutExpired:
            failures.append(f"{point}: the daemon was still running 120 s after the feed started (killed now)")
            first.kill()
            first.wait()
            return failures
    text = open(log_path).read()
    said = [l for l in text.splitlines() if "failpoint: killing the process" in l]
    print(f"failpoint {point}:{at}: the daemon exited {code}; " + (said[0] if said else "no failpoint log line"),
          flush=True)
    if code != -signal.SIGKILL or not said:
        failures.append(f"{point}: expected a SIGKILL at the failpoint, got exit {code}:\n" + text[-2000:])
        return failures

    # Kafka's side and LMDB's side, as the crash left them.
    L = lmdb_offsets(f"{work}/state-{name}", topic).get(0, -1)
    G = group_offsets(work, name, topic).get(0, -1)
    logged = changelog_offsets(work, f"{name}-changelog", topic).get(0, [])
    past = sorted(set(o for o in logged if o > L))
    print(f"failpoint {point}: offsets after the crash: LMDB {L}, group {G}, committed changelog offsets past "
          f"LMDB {past} (of {len(logged)})", flush=True)
    if L <= 0:
        failures.append(f"{point}: LMDB holds no batch (offset {L}) before the crash at commit {at}")
    if point == "after-kafka-commit" and (G <= L or past != [G]):
        failures.append(f"{point}: Kafka should hold exactly the one batch LMDB lacks: LMDB {L}, group {G}, "
                        f"changelog offsets past LMDB {past}")
    if point == "before-kafka-commit" and (G != L or past):
        failures.append(f"{point}: LMDB holds a batch Kafka did not commit, or Kafka one LMDB lacks: LMDB {L}, "
                        f"group {G}, changelog offsets past LMDB {past}")

    # The restart, without the failpoint, reads the rest; an idle timeout
    # then closes the windows still open (as replay's end of input does).
    feeder.wait(timeout=120)
    write_config(config, work, name, brokers, rules, port, topic=topic, idle="2s")
    log_path = f"{work}/{name}-second.log"
    with open(log_path, "w") as log:
        second = subprocess.Popen([cepheus, "run", "--config", config], stdout=log, stderr=log)
        procs.append(second)
        deadline = time.time() + 180
        while time.time() < deadline and second.poll() is None and (evaluated(port) or 0) < events - max(G, 0):
            time.sleep(0.5)
        time.sleep(8)
        second.send_signal(signal.SIGTERM)
        code2 = second.wait(timeout=60)
    text2 = open(log_path).read()
    if code2 != 0:
        failures.append(f"{point}: the restart exited {code2}:\n" + text2[-2000:])
    rolled = [l for l in text2.splitlines() if "state restored from the changelog" in l]
    if point == "after-kafka-commit" and not rolled:
        failures.append(f"{point}: the restart did not roll LMDB forward from the changelog:\n" + text2[-2000:])
    if rolled:
        print(f"failpoint {point}: " + rolled[0].split(": ", 1)[-1], flush=True)

    alerts = [reduce_alert(json.loads(l)) for l in read_topic(work, f"alerts-{name}")]
    missing, duplicates = missing_and_duplicates(golden, alerts)
    print(f"failpoint {point}: replay {len(golden)} alerts, daemon {len(alerts)}: {missing} missing, "
          f"{duplicates} duplicates", flush=True)
    if not golden or missing or duplicates:
        failures.append(f"{point}: alerts differ from replay: {missing} missing, {duplicates} duplicates")
    return failures


def main():
    args = sys.argv[1:]
    cepheus, rules = os.path.abspath(args[0]), os.path.abspath(args[1])
    opt = lambda name, default: int(args[args.index(name) + 1]) if name in args else default
    n_events, seed, at = opt("--events", 40000), opt("--seed", 13), opt("--at", 20)
    work = tempfile.mkdtemp(prefix="cepheus-failpoint-")
    procs = []
    failures = []
    try:
        os.makedirs(f"{work}/broker")
        brokers = sh(BROKER, "start", f"{work}/broker").strip()
        gen = ["--events", str(n_events), "--users", "2000", "--seed", str(seed), "--fraud-rate", "0.01",
               "--out-of-order", "2s"]
        with open(f"{work}/events.jsonl", "w") as f:
            subprocess.run([cepheus, "gen", *gen], check=True, stdout=f, stderr=subprocess.DEVNULL)
        replay = subprocess.run([cepheus, "replay", "--rules", rules, "--events", f"{work}/events.jsonl",
                                 "--out-of-order", "2s", "--quiet"], check=True, capture_output=True)
        golden = [reduce_alert(json.loads(l)) for l in replay.stdout.split(b"\n") if l.strip()]
        print(f"failpoint: broker up, replay gave {len(golden)} alerts", flush=True)
        for point in ("after-kafka-commit", "before-kafka-commit"):
            failures += crash_and_recover(cepheus, rules, work, brokers, n_events, gen, golden, point, at, procs)
    finally:
        stop_all(work, procs)
        if not failures:
            shutil.rmtree(work, ignore_errors=True)
    if failures:
        print("FAIL (files kept in " + work + "):\n" + "\n".join(failures))
        return 1
    print("failpoint: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
