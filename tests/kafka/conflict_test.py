#!/usr/bin/env python3
"""Misconfigurations an operator can make, against a real broker
(reliability tests A6 and D5):

- two daemons started with the same kafka.transactional_id (here in two
  groups): the newer one's InitTransactions fences the older, which must exit
  non-zero within 60 s with a log line naming the id in conflict;
- a second daemon on a state directory another one holds: refused at once with
  exit 78 (EX_CONFIG) and a message saying so.

    conflict_test.py PATH/TO/cepheus RULES_DIR
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eos_kill_test import BROKER, evaluated, free_port, sh, stop_all, write_config  # noqa: E402


def main():
    cepheus, rules = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    work = tempfile.mkdtemp(prefix="cepheus-conflict-")
    failures = []
    procs = []
    try:
        os.makedirs(f"{work}/broker")
        brokers = sh(BROKER, "start", f"{work}/broker").strip()
        for topic, parts in (("events", 2), ("alerts-fence-a", 1), ("dead-fence-a", 1), ("fence-a-changelog", 2),
                             ("alerts-fence-b", 1), ("dead-fence-b", 1), ("fence-b-changelog", 2)):
            sh(BROKER, "topic", f"{work}/broker", topic, str(parts))
        # Records keep coming, so the older daemon keeps committing transactions.
        feeder = subprocess.Popen([cepheus, "gen", "--kafka", brokers, "--topic", "events", "--events", "200000",
                                   "--users", "500", "--rate", "2000"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        procs.append(feeder)
        ports = {"a": free_port(), "b": free_port(), "c": free_port()}
        write_config(f"{work}/a.yaml", work, "a", brokers, rules, ports["a"], group="fence-a", member="fence")
        write_config(f"{work}/b.yaml", work, "b", brokers, rules, ports["b"], group="fence-b", member="fence")
        # c: a's state directory, another group and id.
        write_config(f"{work}/c.yaml", work, "a", brokers, rules, ports["c"], group="fence-c", member="other")

        a_log, b_log = open(f"{work}/a.log", "w"), open(f"{work}/b.log", "w")
        a = subprocess.Popen([cepheus, "run", "--config", f"{work}/a.yaml"], stdout=a_log, stderr=a_log)
        procs.append(a)
        deadline = time.time() + 90
        while time.time() < deadline and not (evaluated(ports["a"]) or 0) > 100:
            time.sleep(0.2)
        if not (evaluated(ports["a"]) or 0) > 100:
            failures.append("the first daemon did not start reading")
            return failures

        # D5: the state directory is a's.
        c = subprocess.run([cepheus, "run", "--config", f"{work}/c.yaml"], capture_output=True, text=True,
                           timeout=60)
        if c.returncode != 78:
            failures.append(f"a second daemon on a held state directory exited {c.returncode}, not 78")
        if "in use by another cepheus process" not in c.stderr:
            failures.append(f"the refusal does not say why: {c.stderr[-300:]}")

        # A6: b takes the transactional id.
        b = subprocess.Popen([cepheus, "run", "--config", f"{work}/b.yaml"], stdout=b_log, stderr=b_log)
        procs.append(b)
        started = time.time()
        try:
            code = a.wait(timeout=60)
        except subprocess.TimeoutExpired:
            code = None
        took = time.time() - started
        a_log.flush()
        text = open(f"{work}/a.log").read()
        if code is None:
            failures.append("the fenced daemon was still running 60 s after the second one started")
        elif code == 0:
            failures.append("the fenced daemon exited 0")
        named = [l for l in text.splitlines() if "transactional_id 'fence'" in l]
        if not named:
            failures.append("no log line names the transactional id in conflict:\n" + text[-1500:])
        else:
            print(named[0])
        if b.poll() is not None:
            failures.append(f"the newer daemon stopped too (exit {b.returncode})")
        print(f"fenced daemon exited {code} after {took:.1f} s; held state directory refused with exit {c.returncode}")
    finally:
        stop_all(work, procs)
        shutil.rmtree(work, ignore_errors=True)
    return failures


if __name__ == "__main__":
    problems = main()
    for p in problems:
        print("FAIL:", p)
    print("conflict test:", "failed" if problems else "passed")
    sys.exit(1 if problems else 0)
