#!/usr/bin/env python3
"""Exactly-once under kill -9, against a real Kafka broker.

    eos_kill_test.py CEPHEUS RULES [--events N] [--kills K] [--seed S] [--two-daemons] [--malformed]
    eos_kill_test.py CEPHEUS RULES --vs-replay [--events N] [--seed S]

Starts a broker (tests/kafka/broker.sh), produces N generated events, and runs
`cepheus run` twice over them, each with its own consumer group, alerts topic
and state directory:

  golden: one daemon, no fault, stopped once every event was read;
  faulty: a daemon killed with SIGKILL K times at random moments (mid-batch,
          mid-transaction, wherever the clock falls), restarted each time,
          then left to finish.

With --two-daemons the faulty run is instead two daemons in one consumer
group, each with its own state directory: A starts, B joins (partitions move to
it with their partial matches, through the changelog), then A is killed with
SIGKILL and B takes every partition, restoring A's from the changelog.

With --malformed the faulty run reads another topic holding the same events
plus 1 % malformed records between them (no kill): every malformed record must
land in the dead-letter topic and the alerts must be those of the clean run
(compared by rule, key, reason and bound event ids, since the records' offsets
differ).

With --vs-replay there is no fault: the daemon reads a one-partition topic
(so its watermark is replay's), with a short idle timeout so the windows still
open at the end close as replay's end of input closes them, and its alerts
must equal `cepheus replay` over the same generated file (by rule, key,
reason and bound event ids: positions, hence alert ids, differ).

Then it reads both alerts topics with isolation.level=read_committed and
compares them as multisets of alert ids: 0 missing and 0 duplicates, or fail.
"""
import json
from collections import Counter
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import free_port  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BROKER = os.path.join(HERE, "broker.sh")


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw).stdout


def read_counts(port):
    """(input records, all records) the daemon behind `port` has read from
    Kafka: all records include those of its re-keying topics (events and
    watermark marks, section 6.4), the input ones do not. None when its
    metrics do not answer."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return None
    total, rekeyed = None, 0.0
    for line in text.splitlines():
        m = re.match(r'cepheus_records_read_total (\S+)', line)
        if m:
            total = float(m.group(1))
        m = re.match(r'cepheus_rekey_records_read_total\{[^}]*\} (\S+)', line)
        if m:
            rekeyed += float(m.group(1))
    return None if total is None else (total - rekeyed, total)


def evaluated(port):
    """Input records the daemon behind `port` has read from Kafka."""
    counts = read_counts(port)
    return None if counts is None else counts[0]


def write_config(path, work, name, brokers, rules, port, group=None, member=None, topic="events",
                 idle="1d"):
    group = group or name
    member = member or name
    with open(path, "w") as f:
        f.write(f"""rules:
  path: {rules}
events:
  out_of_order: 2s
  idle_timeout: {idle}          # 1d: no wall-clock watermark, the output depends on the input only
  max_future_skew: 36500d
kafka:
  brokers: {brokers}
  group_id: {group}
  input_topics: [{topic}]
  alerts_topic: alerts-{group}
  dead_letter_topic: dead-{group}
  transactional_id: {member}
  consumer:
    group.instance.id: {member}-1   # static membership: a restarted daemon takes its partitions back at once
    session.timeout.ms: "10000"
  producer:
    transaction.timeout.ms: "10000"   # a killed daemon's open transaction is aborted within 10 s
state:
  directory: {work}/state-{name}
  map_size: 64MiB
  commit_interval: 200ms
metrics:
  listen: 127.0.0.1:{port}
log:
  level: info
""")


def start(cepheus, config, log):
    return subprocess.Popen([cepheus, "run", "--config", config], stdout=log, stderr=log)


def stop_all(work, procs):
    """Cleanup after a test: SIGKILL every process still running, then stop the broker."""
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    subprocess.run([BROKER, "stop", f"{work}/broker"], capture_output=True)


class Feeder:
    """Produces `lines` ("key<TAB>value") to `topic`, `per_tick` of them every
    0.1 s, through one console producer (broker.sh produce) fed from its own
    thread. `proc` is the producer process (for stop_all)."""

    def __init__(self, work, topic, lines, per_tick):
        self.proc = subprocess.Popen([BROKER, "produce", f"{work}/broker", topic], stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        self.lines, self.per_tick = lines, per_tick
        self.thread = threading.Thread(target=self._feed, daemon=True)

    def start(self):
        self.thread.start()

    def _feed(self):
        t = time.monotonic()
        for i in range(0, len(self.lines), self.per_tick):
            self.proc.stdin.write("\n".join(self.lines[i:i + self.per_tick]) + "\n")
            self.proc.stdin.flush()
            t += 0.1
            time.sleep(max(0.0, t - time.monotonic()))
        self.proc.stdin.close()

    def wait(self):
        """Until every line is produced."""
        self.thread.join()
        self.proc.wait(timeout=60)


METRICS = ("cepheus_events_total", "cepheus_alerts_total", "cepheus_alerts_suppressed_total",
           "cepheus_runs_active", "cepheus_runs_evicted_total", "cepheus_keys_active",
           "cepheus_event_to_alert_seconds", "cepheus_watermark_lag_seconds", "cepheus_consumer_lag",
           "cepheus_state_commit_seconds", "cepheus_state_bytes", "cepheus_rule_reloads_total",
           "cepheus_kafka_transaction_aborts_total", "cepheus_build_info")


def lint_metrics(port):
    """Problems with the daemon's /metrics: promtool's findings and missing names."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    problems = [l for l in (lint.stdout + lint.stderr).splitlines() if l.strip()]
    problems += [f"{m} is not exported" for m in METRICS if f"# TYPE {m} " not in text]
    return problems


def wait_until_read(port, expected, timeout=300, proc=None):
    """Until the daemon behind `port` has read `expected` records, nothing moved
    for 20 s, or (when given) `proc` exited. Returns the records read."""
    deadline = time.time() + timeout
    last, last_change = -1, time.time()
    while time.time() < deadline and (proc is None or proc.poll() is None):
        time.sleep(1)
        n = evaluated(port)
        if n is not None and n != last:
            last, last_change = n, time.time()
        if n is not None and n >= expected:
            # The re-keying topics' records follow the input's: until they
            # stop coming (2 s), then a commit and a metrics update.
            settled, before = time.time() + 60, None
            while time.time() < settled and (proc is None or proc.poll() is None):
                counts = read_counts(port)
                if counts is not None and counts[1] == before:
                    break
                before = counts[1] if counts is not None else None
                time.sleep(2)
            time.sleep(1.5)
            break
        if time.time() - last_change > 20 and last >= 0:
            break
    return last


def run_until_idle(cepheus, config, port, log, expected, timeout=300, lint=None):
    """Runs a daemon until it has read `expected` events (or nothing moves for 20 s), then SIGTERM."""
    proc = start(cepheus, config, log)
    last = wait_until_read(port, expected, timeout)
    if lint is not None:
        lint.extend(lint_metrics(port))
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=60)
    return code, last


def read_topic(work, topic):
    """Every committed record of `topic` (the consumer stops after 10 s without a message)."""
    env = dict(os.environ, CEPHEUS_KAFKA_CONSUME_TIMEOUT="10")
    p = subprocess.run([BROKER, "consume", f"{work}/broker", topic, str(10 ** 9), "--read-committed"],
                       capture_output=True, env=env)
    return [l for l in p.stdout.split(b"\n") if l.strip()]


def reduce_alert(a):
    return (a["rule"], a["key"], a["reason"],
            tuple(sorted((n, tuple(e.get("id") for e in evs)) for n, evs in a["events"].items())))


def missing_and_duplicates(want, got):
    """Compares two multisets of alerts: (how many of `want` are not in `got`, how many of `got` are extra)."""
    w, g = Counter(want), Counter(got)
    return sum((w - g).values()), sum((g - w).values())


def read_alerts(work, topic, by_content=False):
    """Alert ids, or (rule, key, reason, bound event ids) with `by_content`."""
    return [reduce_alert(json.loads(l)) if by_content else json.loads(l)["alert_id"] for l in read_topic(work, topic)]


def main():
    args = sys.argv[1:]
    cepheus, rules = os.path.abspath(args[0]), os.path.abspath(args[1])
    opt = lambda name, default: int(args[args.index(name) + 1]) if name in args else default
    n_events, kills, seed = opt("--events", 200000), opt("--kills", 5), opt("--seed", 5)
    rng = random.Random(seed)
    work = tempfile.mkdtemp(prefix="cepheus-eos-")
    ok = False
    try:
        t0 = time.time()
        os.makedirs(f"{work}/broker")
        brokers = sh(BROKER, "start", f"{work}/broker").strip()
        for topic, parts in (("events", 4), ("events-dirty", 4), ("events-one", 1), ("alerts-golden", 1), ("alerts-faulty", 1),
                             ("dead-golden", 1), ("dead-faulty", 1), ("golden-changelog", 4),
                             ("faulty-changelog", 4)):
            sh(BROKER, "topic", f"{work}/broker", topic, str(parts))
        sh(cepheus, "gen", "--kafka", brokers, "--topic", "events", "--events", str(n_events), "--users", "2000",
           "--seed", str(seed), "--fraud-rate", "0.01", "--out-of-order", "2s")
        if "--vs-replay" in args:
            gen_args = [cepheus, "gen", "--events", str(n_events), "--users", "2000", "--seed", str(seed),
                        "--fraud-rate", "0.01", "--out-of-order", "2s"]
            subprocess.run(gen_args[:1] + ["gen", "--kafka", brokers, "--topic", "events-one"] + gen_args[2:],
                           check=True, capture_output=True)
            with open(f"{work}/events.jsonl", "w") as f:
                subprocess.run(gen_args, check=True, stdout=f, stderr=subprocess.DEVNULL)
            replay = subprocess.run([cepheus, "replay", "--rules", rules, "--events", f"{work}/events.jsonl",
                                     "--out-of-order", "2s", "--quiet"], check=True, capture_output=True)
            replayed = [l for l in replay.stdout.split(b"\n") if l.strip()]
        malformed = 0
        if "--malformed" in args:
            p = subprocess.run([cepheus, "gen", "--kafka", brokers, "--topic", "events-dirty", "--events",
                                str(n_events), "--users", "2000", "--seed", str(seed), "--fraud-rate", "0.01",
                                "--out-of-order", "2s", "--malformed", "0.01"],
                               check=True, capture_output=True, text=True)
            malformed = int(re.search(r"(\d+) malformed records", p.stderr).group(1))
        print(f"eos: broker up and {n_events} events produced in {time.time() - t0:.1f} s", flush=True)

        log = open(f"{work}/daemons.log", "w")
        ports = {"golden": free_port(), "faulty": free_port()}
        for name in ports:
            write_config(f"{work}/{name}.yaml", work, name, brokers, rules, ports[name])

        t1 = time.time()
        problems = []
        code, seen = run_until_idle(cepheus, f"{work}/golden.yaml", ports["golden"], log, n_events, lint=problems)
        print(f"eos: golden run read {seen:.0f} events in {time.time() - t1:.1f} s, exit {code}", flush=True)
        if code != 0 or seen < n_events:
            raise SystemExit("the golden run did not finish cleanly")
        for p in problems:
            print(f"eos: metrics: {p}")

        t2 = time.time()
        if "--vs-replay" in args:
            write_config(f"{work}/faulty.yaml", work, "faulty", brokers, rules, ports["faulty"],
                         topic="events-one", idle="2s")
            proc = start(cepheus, f"{work}/faulty.yaml", log)
            deadline = time.time() + 300
            while time.time() < deadline and (evaluated(ports["faulty"]) or 0) < n_events:
                time.sleep(1)
            time.sleep(8)  # the idle timeout moves the watermark to the wall clock: every window closes
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
            kills = 0
        if "--malformed" in args:
            write_config(f"{work}/faulty.yaml", work, "faulty", brokers, rules, ports["faulty"],
                         topic="events-dirty")
            code, _ = run_until_idle(cepheus, f"{work}/faulty.yaml", ports["faulty"], log,
                                     n_events + malformed, timeout=300)
            kills = 0
        if "--two-daemons" in args:
            ports["b"] = free_port()
            write_config(f"{work}/a.yaml", work, "faulty-a", brokers, rules, ports["faulty"], "faulty", "faulty-a")
            write_config(f"{work}/b.yaml", work, "faulty-b", brokers, rules, ports["b"], "faulty", "faulty-b")
            a = start(cepheus, f"{work}/a.yaml", log)
            time.sleep(rng.uniform(3.0, 5.0))
            b = start(cepheus, f"{work}/b.yaml", log)
            print(f"eos: daemon B joined after {time.time() - t2:.1f} s", flush=True)
            time.sleep(rng.uniform(3.0, 5.0))
            a.kill()
            a.wait()
            print(f"eos: daemon A killed with SIGKILL after {time.time() - t2:.1f} s", flush=True)
            last, last_change = -1, time.time()
            while time.time() - last_change < 25 and time.time() - t2 < 300:
                time.sleep(1)
                n = evaluated(ports["b"])
                if n is not None and n != last:
                    last, last_change = n, time.time()
            b.send_signal(signal.SIGTERM)
            code = b.wait(timeout=60)
            kills = 0
        for k in range(kills):
            proc = start(cepheus, f"{work}/faulty.yaml", log)
            # Kill it while it works: once it has read records, after a random delay.
            before = None
            wait_until = time.time() + 8  # or nothing is left to read
            while time.time() < wait_until:
                n = evaluated(ports["faulty"])
                if before is None and n is not None:
                    before = n
                if n is not None and n > 0 and n != before:
                    break
                time.sleep(0.05)
            time.sleep(rng.uniform(0.1, 1.5))
            proc.kill()  # SIGKILL: no commit, no flush, no close
            proc.wait()
            print(f"eos: kill -9 #{k + 1} after {time.time() - t2:.1f} s", flush=True)
        if kills > 0:
            code, _ = run_until_idle(cepheus, f"{work}/faulty.yaml", ports["faulty"], log, 10 ** 12, timeout=300)
        print(f"eos: faulty run finished in {time.time() - t2:.1f} s, exit {code}", flush=True)

        by_content = "--malformed" in args or "--vs-replay" in args
        golden = read_alerts(work, "alerts-golden", by_content)
        if "--vs-replay" in args:
            golden = [reduce_alert(json.loads(l)) for l in replayed]  # the reference is replay, not a daemon
        faulty = read_alerts(work, "alerts-faulty", by_content)
        dead = len(read_topic(work, "dead-faulty")) if by_content else 0
        if by_content:
            print(f"eos: {malformed} malformed records produced, {dead} in the dead-letter topic")
        missing, duplicates = missing_and_duplicates(golden, faulty)
        print(f"eos: golden {len(golden)} alerts, faulty {len(faulty)}: {missing} missing, {duplicates} duplicates")
        log.close()
        text = open(f"{work}/daemons.log").read()
        restored = len(re.findall(r"assigned events/\d+: [1-9]\d* runs restored", text))
        from_log = len(re.findall(r"state restored from the changelog", text))
        print(f"eos: {from_log} partition restores from the changelog")
        caught_up = len(re.findall(r"already published", text))
        print(f"eos: restarts restored runs on {restored} partitions; {caught_up} partitions caught up after a "
              "crash between the Kafka and the LMDB commit")
        ok = (code == 0 and len(golden) > 0 and missing == 0 and duplicates == 0 and restored > 0
              and not problems and ("--two-daemons" not in args or from_log > 0)
              and dead == malformed)
        if "--vs-replay" in args:
            absences = sum(1 for a in golden if a[2] == "absence")
            print(f"eos: replay gave {len(golden)} alerts ({absences} by absence)")
        if by_content:
            ok = ok or (code == 0 and len(golden) > 0 and missing == 0 and duplicates == 0 and not problems
                        and dead == malformed)
    finally:
        subprocess.run([BROKER, "stop", f"{work}/broker"], capture_output=True)
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"eos: FAILED; logs kept in {work}")
    print("eos: 1 passed, 0 failed" if ok else "eos: 0 passed, 1 failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
