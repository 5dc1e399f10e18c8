#!/usr/bin/env python3
"""Scale 1 -> 3 -> 1 daemons while events flow, against a real Kafka broker
(reliability test C1).

    scale_test.py CEPHEUS RULES [--events N] [--users U] [--seed S]

Starts a broker (tests/kafka/broker.sh) and a 4-partition input topic. A
quarter of N generated events is produced up front, the rest at 4000 a second
while the group changes:

  daemon A starts alone and takes every partition;
  daemons B and C join (cooperative-sticky: A keeps some partitions, the others
  move to B and C with their partial matches, through the changelog);
  B and C stop with SIGTERM (each commits its last batch and leaves), and
  their partitions move back to A, again through the changelog;
  A reads to the end.

Events keep coming across both moves, so patterns that span a move must still
fire. Then a golden daemon, alone in its own group, reads the same topic, and
the two alerts topics (read_committed) must be equal as multisets of alert
ids: 0 missing, 0 duplicates. Also: every daemon exits 0, at least one
partition was restored from the changelog, and A's
cepheus_state_restore_seconds counts its restores (the first assignment and
the return of the moved partitions).

N defaults to 80 000 events of 2 000 users, so the feed lasts about 15 s: long
enough for the three phases on 2 cores, short enough for CI.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
from eos_kill_test import (BROKER, Feeder, evaluated, missing_and_duplicates, read_topic, sh, stop_all,  # noqa: E402
                           wait_until_read, write_config)
from testlib import free_port, samples, scrape  # noqa: E402


def wait_reading(port, timeout=60):
    """Until the daemon behind `port` has read a record; False on timeout."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (evaluated(port) or 0) > 0:
            return True
        time.sleep(0.1)
    return False


def main():
    args = sys.argv[1:]
    cepheus, rules = os.path.abspath(args[0]), os.path.abspath(args[1])
    opt = lambda name, default: int(args[args.index(name) + 1]) if name in args else default
    n_events, users, seed = opt("--events", 80000), opt("--users", 2000), opt("--seed", 31)
    work = tempfile.mkdtemp(prefix="cepheus-scale-")
    procs, failures, ok = [], [], False
    try:
        t0 = time.time()
        lines = subprocess.run([cepheus, "gen", "--events", str(n_events), "--users", str(users), "--seed", str(seed),
                                "--fraud-rate", "0.01", "--out-of-order", "2s"], check=True, capture_output=True,
                               text=True).stdout.splitlines()
        keyed = [f"{json.loads(l)['user_id']}\t{l}" for l in lines]
        os.makedirs(f"{work}/broker")
        brokers = sh(BROKER, "start", f"{work}/broker").strip()
        for topic, parts in (("events", 4), ("alerts-golden", 1), ("alerts-scale", 1), ("dead-golden", 1),
                             ("dead-scale", 1), ("golden-changelog", 4), ("scale-changelog", 4)):
            sh(BROKER, "topic", f"{work}/broker", topic, str(parts))
        upfront = n_events // 4
        sh(BROKER, "produce", f"{work}/broker", "events", input="\n".join(keyed[:upfront]) + "\n")
        print(f"scale: broker up, {upfront} of {n_events} events ({users} users) produced in "
              f"{time.time() - t0:.1f} s", flush=True)

        feeder = Feeder(work, "events", keyed[upfront:], 400)  # 4000 a second
        procs.append(feeder.proc)

        ports = {name: free_port() for name in ("a", "b", "c", "golden")}
        for name in ("a", "b", "c"):
            write_config(f"{work}/{name}.yaml", work, f"scale-{name}", brokers, rules, ports[name], group="scale",
                         member=f"scale-{name}")
        write_config(f"{work}/golden.yaml", work, "golden", brokers, rules, ports["golden"])
        log = open(f"{work}/daemons.log", "w")
        start = lambda name: subprocess.Popen([cepheus, "run", "--config", f"{work}/{name}.yaml"], stdout=log,
                                              stderr=log)

        t1 = time.time()
        a = start("a")
        procs.append(a)
        if not wait_reading(ports["a"]):
            raise SystemExit("daemon A read nothing within 60 s")
        feeder.start()
        time.sleep(2)
        b, c = start("b"), start("c")
        procs += [b, c]
        joined = wait_reading(ports["b"]) and wait_reading(ports["c"])
        print(f"scale: B and C joined after {time.time() - t1:.1f} s "
              f"({'both read records' if joined else 'not both read records'})", flush=True)
        if not joined:
            failures.append("B and C did not both get partitions within 60 s")
        time.sleep(3)
        for name, proc in (("b", b), ("c", c)):
            proc.send_signal(signal.SIGTERM)
        for name, proc in (("b", b), ("c", c)):
            code = proc.wait(timeout=60)
            if code != 0:
                failures.append(f"daemon {name.upper()} exited {code} on SIGTERM")
        print(f"scale: B and C stopped after {time.time() - t1:.1f} s; A carries on", flush=True)
        feeder.wait()
        wait_until_read(ports["a"], 10 ** 12, proc=a)
        text = scrape(ports["a"])
        restores = samples(text).get("cepheus_state_restore_seconds_count", 0)
        a.send_signal(signal.SIGTERM)
        code = a.wait(timeout=60)
        if code != 0:
            failures.append(f"daemon A exited {code}")
        if restores < 2:
            failures.append(f"A's cepheus_state_restore_seconds counts {restores} restores, not at least 2")
        print(f"scale: A finished after {time.time() - t1:.1f} s; A timed {restores:.0f} restores", flush=True)

        golden = start("golden")
        procs.append(golden)
        seen = wait_until_read(ports["golden"], n_events, proc=golden)
        golden.send_signal(signal.SIGTERM)
        if golden.wait(timeout=60) != 0 or seen < n_events:
            failures.append(f"the golden run did not finish cleanly ({seen} of {n_events} records)")
        log.close()

        want = [json.loads(l)["alert_id"] for l in read_topic(work, "alerts-golden")]
        got = [json.loads(l)["alert_id"] for l in read_topic(work, "alerts-scale")]
        missing, duplicates = missing_and_duplicates(want, got)
        daemons_log = open(f"{work}/daemons.log").read()
        moved = len(re.findall(r"state restored from the changelog", daemons_log))
        print(f"scale: golden {len(want)} alerts, scaled group {len(got)}: {missing} missing, "
              f"{duplicates} duplicates; {moved} partition restores from the changelog", flush=True)
        if not want or missing or duplicates:
            failures.append(f"alerts differ from the golden run: {missing} missing, {duplicates} duplicates")
        if moved == 0:
            failures.append("no partition was restored from the changelog: nothing moved with its state")
        ok = not failures
    finally:
        stop_all(work, procs)
        for f in failures:
            print(f"scale: FAIL: {f}")
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"scale: logs kept in {work}")
    print("scale: 1 passed, 0 failed" if ok else "scale: 0 passed, 1 failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
