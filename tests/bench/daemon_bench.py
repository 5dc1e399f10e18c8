#!/usr/bin/env python3
"""Daemon benchmark against a real Kafka broker (tests/kafka/broker.sh).

    tests/bench/daemon_bench.py CEPHEUS RULES [--events N] [--latency-rate R] [--commit-interval D]
    tests/bench/daemon_bench.py CEPHEUS RULES --vs OTHER_CEPHEUS [--rounds K] [--events N]
    tests/bench/daemon_bench.py CEPHEUS RULES --rekey-ratio [--rounds K] [--events N]

Full speed: N events are produced first, then one daemon reads them all with
every rule in RULES; the figure is events per second of daemon CPU time
(user + system, from /proc, between its first and its last record).
Half load: events are produced at half the full-speed rate for at least 20 s
while the daemon runs (the feed starts once the daemon holds its partitions); the
figures are the p50 and p99 of cepheus_event_to_alert_seconds (a record's
Kafka time to its alert's commit) after the first tenth of the events (steady
state), read from the daemon's histogram like Prometheus' histogram_quantile
does, with the commit times and the cores the daemon, the broker and the
producer used meanwhile. Full-speed latencies are
printed too (they include the time the records waited in the topic).
Side by side (--vs): the full-speed run only, K rounds (default 5) of CEPHEUS
then OTHER on the same broker and the same topic (each with its own group,
changelog and state), so both see the same machine drift; prints each run's
events per daemon CPU-second and the median of the per-round ratios.
Re-keying (--rekey-ratio): the full-speed run, K rounds (default 3) with
kafka.rekey on then off, the same rules and events: the cost of running the
rules keyed off user_id after re-keying, against running them on the input
partitions (as v1 did, with per-partition results). Events are counted from
the input topic only (re-keying records are read too, and counted apart).
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import free_port, scrape  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BROKER = os.path.join(HERE, "..", "kafka", "broker.sh")
TICKS = os.sysconf("SC_CLK_TCK")
COMMIT = "cepheus_state_commit_seconds"


def cpu_seconds(pid, thread=None):
    """CPU seconds of a process (every thread), or of one of its threads."""
    path = f"/proc/{pid}/task/{thread}/stat" if thread else f"/proc/{pid}/stat"
    fields = open(path).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def quantile(text, q, metric="cepheus_event_to_alert_seconds"):
    buckets = [(float("inf") if le == "+Inf" else float(le), float(v)) for le, v in
               re.findall(r'^' + metric + r'_bucket\{le="([^"]+)"\} (\S+)', text, re.M)]
    buckets.sort()
    if not buckets or buckets[-1][1] == 0:
        return float("nan")
    rank, prev_le, prev_n = q * buckets[-1][1], 0.0, 0.0
    for le, n in buckets:
        if n >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_n) / max(n - prev_n, 1e-9)
        prev_le, prev_n = le, n
    return prev_le


def config(work, name, brokers, rules, port, topic, commit="100ms", rekey=True):
    path = f"{work}/{name}.yaml"
    with open(path, "w") as f:
        f.write(f"""rules: {{path: {rules}}}
events: {{out_of_order: 2s, idle_timeout: 1d, max_future_skew: 36500d}}
kafka:
  brokers: {brokers}
  group_id: {name}
  input_topics: [{topic}]
  alerts_topic: alerts
  dead_letter_topic: dead
  transactional_id: {name}
  rekey: {"true" if rekey else "false"}
state: {{directory: {work}/state-{name}, commit_interval: {commit}}}
metrics: {{listen: "127.0.0.1:{port}"}}
""")
    return path


def counter(text, name):
    m = re.search(r"^" + name + r" (\S+)", text, re.M)
    return float(m.group(1)) if m else 0.0


def input_records(text):
    """Records read from the input topics: all records read less those of the re-keying topics."""
    rekeyed = sum(float(v) for v in re.findall(r"^cepheus_rekey_records_read_total\{[^}]*\} (\S+)", text, re.M))
    return counter(text, "cepheus_records_read_total") - rekeyed


def minus(later, earlier):
    """The histogram samples of `later` less those of `earlier` (what happened in between)."""
    before = dict(re.findall(r"^(cepheus_\w+_bucket\{[^}]*\}) (\S+)", earlier, re.M))
    return re.sub(r"^(cepheus_\w+_bucket\{[^}]*\}) (\S+)",
                  lambda m: f"{m.group(1)} {float(m.group(2)) - float(before.get(m.group(1), 0))}", later, flags=re.M)


def cores(first, last):
    """Cores each process used between two samples (CPU seconds per wall second)."""
    wall = max(last[0] - first[0], 1e-9)
    return {name: (last[3][name] - first[3][name]) / wall for name in first[3] if name in last[3]}


def run(cepheus, cfg, port, expected, producer=None, broker_pid=None):
    """Runs a daemon until it has read `expected` records. With `producer` (a
    function that starts the feed), the feed starts once the daemon holds its
    partitions, and the histograms returned cover what came after the first
    tenth of the records (steady state, no start-up backlog)."""
    proc = subprocess.Popen([cepheus, "run", "--config", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = last = warm = None
    feed = None
    deadline = time.time() + 600
    while time.time() < deadline:
        time.sleep(0.2)
        if proc.poll() is not None:
            raise SystemExit(f"the daemon exited early, with status {proc.returncode}")
        text = scrape(port, timeout=2)
        if producer is not None and feed is None:
            if counter(text, "cepheus_state_restore_seconds_count") == 0:
                continue  # not assigned yet
            feed = producer()
        pids = {"daemon": proc.pid, "broker": broker_pid, "producer": feed.pid if feed else None}

        def sample(n):
            cpu = {name: cpu_seconds(pid) for name, pid in pids.items() if pid is not None}
            cpu["daemon's main thread"] = cpu_seconds(proc.pid, proc.pid)
            return (time.time(), cpu["daemon"], n, cpu)

        n = input_records(text)
        if first is None and n > 0:
            first = sample(n)
        if warm is None and n >= expected / 10:
            warm = text
        if n >= expected:
            last = sample(n)
            break
    time.sleep(1.0)  # one more commit, one more metrics update
    text = scrape(port, timeout=2)
    if feed is not None:
        feed.wait()
        text = minus(text, warm)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    return first, last, text


def full_speed(work, name, brokers, cepheus, rules, n, commit, rekey=True):
    port = free_port()
    first, last, text = run(cepheus, config(work, name, brokers, rules, port, "events", commit, rekey), port, n)
    if first is None or last is None:
        raise SystemExit("the full-speed run did not read every event")
    cpu = last[1] - first[1]
    wall = last[0] - first[0]
    main = last[3]["daemon's main thread"] - first[3]["daemon's main thread"]
    n = last[2] - first[2]
    return n / max(cpu, 1e-9), n / max(wall, 1e-9), text, n / max(main, 1e-9)


def side_by_side(work, brokers, new, old, rules, n, commit, rounds):
    """Main thread: the engine, the decoder, the state writes. The other
    threads are librdkafka's, whose polling cost follows the timing of each
    run and so varies more from run to run than the daemon's own code does."""
    ratios, main_ratios = [], []
    for i in range(rounds):
        got = {}
        for label, binary in (("new", new), ("old", old)):
            name = f"r{i}{label}"
            subprocess.run([BROKER, "topic", f"{work}/broker", f"{name}-changelog", "4"], check=True,
                           capture_output=True)
            per_cpu, _, _, per_main = full_speed(work, name, brokers, binary, rules, n, commit)
            got[label] = (per_cpu, per_main)
        ratios.append(got["new"][0] / got["old"][0])
        main_ratios.append(got["new"][1] / got["old"][1])
        print(f"round {i + 1}: events per daemon CPU-second new {got['new'][0]:,.0f}, old {got['old'][0]:,.0f} "
              f"(new/old {ratios[-1]:.3f}); per main-thread CPU-second new {got['new'][1]:,.0f}, "
              f"old {got['old'][1]:,.0f} (new/old {main_ratios[-1]:.3f})", flush=True)
    for what, r in (("daemon", ratios), ("main thread", main_ratios)):
        r.sort()
        print(f"new/old per {what} CPU-second: median {r[len(r) // 2]:.3f} (min {r[0]:.3f}, max {r[-1]:.3f}) over "
              f"{rounds} rounds of {n:,} events")


def rekey_ratio(work, brokers, cepheus, rules, n, commit, rounds):
    """Events per daemon CPU-second with kafka.rekey on (the rules keyed off
    user_id run after re-keying) against off (every rule on the input
    partitions), the same rules, events and broker, in rounds."""
    ratios = []
    for i in range(rounds):
        got = {}
        for label, rekey in (("on", True), ("off", False)):
            name = f"k{i}{label}"
            subprocess.run([BROKER, "topic", f"{work}/broker", f"{name}-changelog", "4"], check=True,
                           capture_output=True)
            got[label] = full_speed(work, name, brokers, cepheus, rules, n, commit, rekey)[0]
        ratios.append(got["on"] / got["off"])
        print(f"round {i + 1}: events per daemon CPU-second with re-keying {got['on']:,.0f}, without "
              f"{got['off']:,.0f} (on/off {ratios[-1]:.3f})", flush=True)
    ratios.sort()
    print(f"re-keying on/off per daemon CPU-second: median {ratios[len(ratios) // 2]:.3f} (min {ratios[0]:.3f}, "
          f"max {ratios[-1]:.3f}) over {rounds} rounds of {n:,} events")


def main():
    args = sys.argv[1:]
    cepheus, rules = os.path.abspath(args[0]), os.path.abspath(args[1])
    n = int(args[args.index("--events") + 1]) if "--events" in args else 200000
    commit = args[args.index("--commit-interval") + 1] if "--commit-interval" in args else "100ms"
    work = tempfile.mkdtemp(prefix="cepheus-bench-")
    try:
        os.makedirs(f"{work}/broker")
        brokers = subprocess.run([BROKER, "start", f"{work}/broker"], check=True, capture_output=True,
                                 text=True).stdout.strip()
        for topic, parts in (("events", 4), ("events-half", 4), ("alerts", 1), ("dead", 1),
                             ("full-changelog", 4), ("half-changelog", 4)):
            subprocess.run([BROKER, "topic", f"{work}/broker", topic, str(parts)], check=True, capture_output=True)
        gen = [cepheus, "gen", "--events", str(n), "--users", "100000", "--seed", "42", "--fraud-rate", "0.002",
               "--out-of-order", "2s", "--kafka", brokers]
        subprocess.run(gen + ["--topic", "events"], check=True, capture_output=True)

        if "--rekey-ratio" in args:
            rekey_ratio(work, brokers, cepheus, rules, n, commit,
                        int(args[args.index("--rounds") + 1]) if "--rounds" in args else 3)
            return
        if "--vs" in args:
            side_by_side(work, brokers, cepheus, os.path.abspath(args[args.index("--vs") + 1]), rules, n, commit,
                         int(args[args.index("--rounds") + 1]) if "--rounds" in args else 5)
            return
        per_cpu, per_wall, text, _ = full_speed(work, "full", brokers, cepheus, rules, n, commit)
        print(f"full speed:  {per_cpu:,.0f} events per daemon CPU-second; {per_wall:,.0f} events/s wall; "
              f"latency p50 {quantile(text, 0.5) * 1000:.0f} ms, p99 {quantile(text, 0.99) * 1000:.0f} ms "
              f"(backlog included); {counter(text, COMMIT + '_count'):.0f} commits")

        rate = max(1, int(per_wall / 2))
        if "--latency-rate" in args:  # latency at a chosen rate instead of half of full speed
            rate = int(args[args.index("--latency-rate") + 1])
        port = free_port()
        # At least 20 s of feed: the latency is that of a steady state.
        half_n = max(n, rate * 20)
        half_gen = list(gen)
        half_gen[gen.index("--events") + 1] = str(half_n)

        def producer():
            return subprocess.Popen(half_gen + ["--topic", "events-half", "--rate", str(rate)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        broker_pid = int(open(f"{work}/broker/broker.pid").read())
        first, last, text = run(cepheus, config(work, "half", brokers, rules, port, "events-half", commit), port,
                                half_n,
                                producer, broker_pid)
        print(f"half load:   {rate:,} events/s produced; latency p50 {quantile(text, 0.5) * 1000:.1f} ms, "
              f"p99 {quantile(text, 0.99) * 1000:.1f} ms (record's Kafka time to its alert's commit); "
              f"a commit takes p50 {quantile(text, 0.5, COMMIT) * 1000:.1f} ms, "
              f"p99 {quantile(text, 0.99, COMMIT) * 1000:.1f} ms; {counter(text, COMMIT + '_count'):.0f} commits")
        if first is not None and last is not None:
            used = cores(first, last)
            print("             cores used meanwhile: " + ", ".join(f"{k} {v:.2f}" for k, v in used.items()) +
                  f" (of {os.cpu_count()})")
    finally:
        subprocess.run([BROKER, "stop", f"{work}/broker"], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
