#!/usr/bin/env python3
"""The state directory runs out of space (reliability test D2), against a real
Kafka broker.

    enospc_test.py CEPHEUS RULES [--events N] [--seed S]

The state directory is a tmpfs of 2 MiB (mount(8) needs root; where mounting
is not permitted the test prints SKIP with the reason and exits 77, which
ctest reports as skipped, never as passed). A daemon reads a one-partition
topic that a producer fills at 4000 events/s, until LMDB cannot write its
batch (ENOSPC on the commit). The daemon commits the Kafka transaction (alerts,
changelog, consumed offsets) first and LMDB after, so at that point Kafka is
one batch ahead of LMDB. The test checks:

  - the daemon exits non-zero, with a log line naming the state directory
    and "No space left on device";
  - no Kafka commit after the failed LMDB commit: the group's committed offset
    G is at or after the offset LMDB holds (L), and the changelog, whose every
    committed transaction records the partition's offset, shows exactly one
    transaction past L, the failed batch, whose offset is G;
  - after the tmpfs is grown to 256 MiB (space restored) a restart rolls
    LMDB forward from the changelog, reads the rest, and its committed alerts
    (read_committed, from both runs) equal `cepheus replay` over the same
    events: 0 missing, 0 duplicates (by rule, key, reason and bound event ids:
    positions, hence alert ids, differ between a file and a topic).

The broker and the mock cluster differ here: the mock drops transactional
offset commits (librdkafka 2.0.2), so the group's offset, which this test is
about, can only be read from a real broker.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eos_kill_test import (BROKER, evaluated, free_port, missing_and_duplicates, read_topic, reduce_alert, sh,  # noqa: E402
                           start, stop_all, write_config)

SKIP = 77  # ctest's SKIP_RETURN_CODE for this test


def lmdb_offsets(state_dir, topic="events-one"):
    """{partition: offset} of `topic` as LMDB holds them (mdb_dump of the state directory, in hex:
    `-p` leaves a backslash byte unescaped in LMDB 0.9.24, which makes it ambiguous)."""
    out = subprocess.run(["mdb_dump", state_dir], check=True, capture_output=True, text=True).stdout.splitlines()
    body = out[out.index("HEADER=END") + 1:]
    offsets = {}
    for k, v in zip(body[0::2], body[1::2]):
        if k == "DATA=END":
            break
        m = re.fullmatch(r"p/" + re.escape(topic) + r"/(\d+)/offset", bytes.fromhex(k.strip()).decode("latin-1"))
        if m:
            # Every value ends with its 8-byte checksum (src/engine/STATE_FORMAT.md).
            offsets[int(m.group(1))] = int(bytes.fromhex(v.strip())[:-8].decode())
    return offsets


def group_offsets(work, group, topic="events-one"):
    """{partition: offset} the group committed on `topic`, as the broker reports it."""
    text = sh(BROKER, "group-offsets", f"{work}/broker", group)
    return {int(p): int(o) for t, p, o in (l.split() for l in text.splitlines()) if t == topic}


def changelog_offsets(work, changelog, topic="events-one"):
    """{partition: [offset, ...]}: the offset records of `topic` in the committed changelog, in order."""
    env = dict(os.environ, CEPHEUS_KAFKA_CONSUME_TIMEOUT="10")
    p = subprocess.run([BROKER, "consume", f"{work}/broker", changelog, str(10 ** 9), "--read-committed", "--keys"],
                       capture_output=True, env=env)
    found = {}
    for line in p.stdout.split(b"\n"):
        m = re.fullmatch(rb"p/" + re.escape(topic.encode()) + rb"/(\d+)/offset\t(\d+)", line)
        if m:
            found.setdefault(int(m.group(1)), []).append(int(m.group(2)))
    return found


def mount(*args):
    return subprocess.run(["mount", *args], capture_output=True, text=True)


def main():
    args = sys.argv[1:]
    cepheus, rules = os.path.abspath(args[0]), os.path.abspath(args[1])
    opt = lambda name, default: int(args[args.index(name) + 1]) if name in args else default
    n_events, seed = opt("--events", 60000), opt("--seed", 11)
    work = tempfile.mkdtemp(prefix="cepheus-enospc-")
    state = f"{work}/state-enospc"  # write_config's state directory for the name "enospc"
    os.makedirs(state)
    m = mount("-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", state)
    if m.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        print(f"enospc: SKIP: cannot mount a tmpfs for the state directory ({(m.stderr or m.stdout).strip()}); "
              "this test needs root and a mount(2) the sandbox permits")
        return SKIP
    failures = []
    procs = []
    ok = False
    try:
        t0 = time.time()
        os.makedirs(f"{work}/broker")
        brokers = sh(BROKER, "start", f"{work}/broker").strip()
        for topic in ("events-one", "alerts-enospc", "dead-enospc", "enospc-changelog"):
            sh(BROKER, "topic", f"{work}/broker", topic, "1")
        gen = ["gen", "--events", str(n_events), "--users", "2000", "--seed", str(seed), "--fraud-rate", "0.01",
               "--out-of-order", "2s"]
        with open(f"{work}/events.jsonl", "w") as f:
            subprocess.run([cepheus, *gen], check=True, stdout=f, stderr=subprocess.DEVNULL)
        replay = subprocess.run([cepheus, "replay", "--rules", rules, "--events", f"{work}/events.jsonl",
                                 "--out-of-order", "2s", "--quiet"], check=True, capture_output=True)
        golden = [reduce_alert(json.loads(l)) for l in replay.stdout.split(b"\n") if l.strip()]
        print(f"enospc: broker up, replay gave {len(golden)} alerts, in {time.time() - t0:.1f} s", flush=True)

        port = free_port()
        write_config(f"{work}/enospc.yaml", work, "enospc", brokers, rules, port, topic="events-one")
        log = open(f"{work}/first.log", "w")
        first = start(cepheus, f"{work}/enospc.yaml", log)
        procs.append(first)
        deadline = time.time() + 60
        while time.time() < deadline and first.poll() is None and "ready: " not in open(f"{work}/first.log").read():
            time.sleep(0.2)
        feeder = subprocess.Popen([cepheus, "gen", "--kafka", brokers, "--topic", "events-one", "--rate", "4000",
                                   *gen[1:]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(feeder)
        t1 = time.time()
        try:
            code = first.wait(timeout=120)
        except subprocess.TimeoutExpired:
            code = None
        log.close()
        if code is None:
            failures.append("the daemon was still running 120 s after the feed started (killed now)")
            first.kill()
            first.wait()
        else:
            print(f"enospc: the daemon exited {code} after {time.time() - t1:.1f} s of feed", flush=True)
        text = open(f"{work}/first.log").read()
        if code == 0:
            failures.append("the daemon exited 0 after its state directory filled up")
        named = [l for l in text.splitlines() if f"state directory {state}" in l and "No space left on device" in l]
        if not named:
            failures.append("no log line names the state directory and the error:\n" + text[-2000:])
        else:
            print("enospc: " + named[0])

        lmdb, group, changelog = lmdb_offsets(state), group_offsets(work, "enospc"), changelog_offsets(work,
                                                                                                   "enospc-changelog")
        L, G, logged = lmdb.get(0, -1), group.get(0, -1), changelog.get(0, [])
        past = sorted(set(o for o in logged if o > L))
        print(f"enospc: offsets after the failure: LMDB {L}, group {G}, changelog past LMDB {past} "
              f"(of {len(logged)} offset records)")
        if L <= 0:
            failures.append(f"LMDB committed no batch before the failure (offset {L}): the tmpfs is too small")
        if G < L:
            failures.append(f"the group's offset {G} is behind LMDB's {L}")
        if past != [G]:
            failures.append(f"Kafka committed other than exactly the failed batch past LMDB's offset {L}: changelog "
                            f"offsets {past}, group offset {G}")

        if failures:
            return failures
        feeder.wait(timeout=120)
        m = mount("-o", "remount,size=256m", state)
        if m.returncode != 0:
            failures.append(f"cannot grow the tmpfs: {m.stderr.strip()}")
            return failures
        # The rest of the events, then an idle timeout that closes the windows
        # still open (as replay's end of input closes them).
        write_config(f"{work}/enospc.yaml", work, "enospc", brokers, rules, port, topic="events-one", idle="2s")
        log = open(f"{work}/second.log", "w")
        t2 = time.time()
        second = start(cepheus, f"{work}/enospc.yaml", log)
        procs.append(second)
        deadline = time.time() + 180
        while time.time() < deadline and second.poll() is None and (evaluated(port) or 0) < n_events - G:
            time.sleep(0.5)
        time.sleep(8)
        second.send_signal(signal.SIGTERM)
        code2 = second.wait(timeout=60)
        log.close()
        text2 = open(f"{work}/second.log").read()
        print(f"enospc: the restart read the rest and stopped with exit {code2} after {time.time() - t2:.1f} s",
              flush=True)
        if code2 != 0:
            failures.append(f"the restart exited {code2}:\n" + text2[-2000:])
        rolled = [l for l in text2.splitlines() if "state restored from the changelog" in l]
        if not rolled:
            failures.append("the restart did not roll LMDB forward from the changelog:\n" + text2[-2000:])
        else:
            print("enospc: " + rolled[0].split(": ", 1)[-1])

        alerts = [reduce_alert(json.loads(l)) for l in read_topic(work, "alerts-enospc")]
        missing, duplicates = missing_and_duplicates(golden, alerts)
        print(f"enospc: replay {len(golden)} alerts, daemon {len(alerts)}: {missing} missing, {duplicates} duplicates")
        if not golden or missing or duplicates:
            failures.append(f"alerts differ from replay: {missing} missing, {duplicates} duplicates")
        ok = not failures
    finally:
        stop_all(work, procs)
        subprocess.run(["umount", state], capture_output=True)
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"enospc: logs kept in {work}")
    return failures


if __name__ == "__main__":
    result = main()
    if result == SKIP:
        sys.exit(SKIP)
    for p in result:
        print("FAIL:", p)
    print("enospc: 0 passed, 1 failed" if result else "enospc: 1 passed, 0 failed")
    sys.exit(1 if result else 0)
