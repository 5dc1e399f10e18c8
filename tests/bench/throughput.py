#!/usr/bin/env python3
"""The daemon's throughput, latency and memory against a real Kafka broker,
each beside its baseline measured in the same run (issue 19).

    tests/bench/throughput.py BUILD_DIR [RULES] [--events N] [--keys K] [--skip-keys]
        [--commit-interval D] [--state 'KEY: VALUE'] [--consumer 'PROPERTY: VALUE'] [--no-rekey] [--keep] [--perf] [--run-only] [--wrap 'valgrind --tool=massif']
    tests/bench/throughput.py BUILD_DIR --v1 [any of the above]
    tests/bench/throughput.py BUILD_DIR [RULES] --latency-only RATE [--events N]
    tests/bench/throughput.py BUILD_DIR [RULES] --keys-only [--keys K] [--events N]
    tests/bench/throughput.py BUILD_DIR [RULES] --cadence A,B [--rounds K] [--events N]
    tests/bench/throughput.py BUILD_DIR [RULES] --against OTHER_BUILD_DIR [--rounds K] [--events N]

Starts a broker (tests/kafka/broker.sh), produces N events of `cepheus gen`
(default 1 000 000; 20 000 users, seed 335, 2 s out of order) to an
8-partition topic keyed by user_id and writes the same events to a file, then:

  bare      a bare librdkafka consumer (tests/bench/bare_consumer.cc: group
            member, read_committed, no decoding) reads the topic: events per
            CPU-second of the process, every thread counted;
  replay    `cepheus replay` of the file with RULES (default rules/);
  run       `cepheus run` from the topic's start until its group committed
            every event (input and re-keying records), with RULES and the
            default commit interval: events per CPU-second of the daemon
            from its start; its peak RSS and anonymous RSS (the LMDB map's
            pages are file-backed and left out).
  ratios    run / bare (target >= 0.5) and the daemon's cost beyond replay
            (CPU-s per 1M events) against the bare consumer's own.
  alerts    the run's committed alerts, by (rule, key, reason, bound event
            ids), equal to replay's: the benchmark fails otherwise.
  latency   a second daemon reads a topic a producer fills at half the run's
            wall rate for 20 s; p50, p99 and max (the bucket it falls in) of
            cepheus_event_to_alert_seconds after the first tenth of the events,
            against state.commit_interval + 50 ms.
  keys      a third daemon reads K (default 1 000 000) events of K distinct
            users (one login or order each, within a few minutes of event
            time): the keys holding state at the end and the daemon's peak
            anonymous RSS (target <= 300 MB); then a fourth the same events
            with the memory setting (MEMORY_SETTING below: fewer keys in
            memory, smaller batches, a smaller prefetch).

--v1 runs the issue's own configuration: the six v1 rules (V1_RULES, with
their events' declarations, copied from rules/ as they are today) and no
re-keying (the v1 daemon had none), in place of RULES.

--cadence and --against print only the run's events per CPU-second, for two
variants in alternating rounds (two values of state.commit_records; this
build and another, e.g. a worktree of an earlier commit), with the median of
the per-round ratios: the machine drifts, a pair of neighbouring runs less.
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
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "kafka"))
from testlib import free_port, scrape  # noqa: E402
from daemon_bench import counter, cpu_seconds, input_records, minus, quantile  # noqa: E402
from eos_kill_test import read_topic, reduce_alert, sh  # noqa: E402

BROKER = os.path.join(HERE, "..", "kafka", "broker.sh")
PARTITIONS = 8
LATENCY = "cepheus_event_to_alert_seconds"
COMMIT = "cepheus_state_commit_seconds"


def child_cpu(cmd, stdout=subprocess.DEVNULL):
    """Runs cmd; returns (its CPU seconds, user + system, every thread; its peak RSS in MiB)."""
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def memory(pid):
    """(peak RSS, anonymous RSS) of a process in MiB, from /proc."""
    status = open(f"/proc/{pid}/status").read()
    kib = lambda name: int(re.search(rf"^{name}:\s+(\d+) kB", status, re.M).group(1))
    return kib("VmHWM") / 1024, kib("RssAnon") / 1024


def config(work, name, brokers, rules, port, topic, idle="1d", state=None, consumer=None):
    state = EXTRA_STATE[0] if state is None else state
    if consumer is None:
        consumer = sys.argv[sys.argv.index("--consumer") + 1] if "--consumer" in sys.argv else ""
    path = f"{work}/{name}.yaml"
    with open(path, "w") as f:
        f.write(f"""rules: {{path: {rules}}}
events: {{out_of_order: 2s, idle_timeout: {idle}, max_future_skew: 36500d}}
kafka:
  brokers: {brokers}
  group_id: {name}
  input_topics: [{topic}]
  alerts_topic: alerts-{name}
  dead_letter_topic: dead
  transactional_id: {name}
  rekey: {"false" if "--no-rekey" in sys.argv or "--v1" in sys.argv else "true"}
  consumer: {{{consumer}}}
state: {{directory: {work}/state-{name}{state}}}
metrics: {{listen: "127.0.0.1:{port}"}}
""")
    return path


class Daemon:
    """A `cepheus run` whose metrics are scraped and whose anonymous RSS is sampled every 0.1 s."""

    def __init__(self, cepheus, cfg, port, work, name):
        self.port = port
        self.log = open(f"{work}/{name}.log", "w")
        wrap = sys.argv[sys.argv.index("--wrap") + 1].split() if "--wrap" in sys.argv else []  # e.g. valgrind
        self.proc = subprocess.Popen(wrap + [cepheus, "run", "--config", cfg], stdout=self.log, stderr=self.log)
        self.peak_anon = 0.0
        self.text = ""

    def poll(self):
        if self.proc.poll() is not None:
            raise SystemExit(f"the daemon exited early, with status {self.proc.returncode}")
        self.peak_anon = max(self.peak_anon, memory(self.proc.pid)[1])
        self.text = scrape(self.port, timeout=2)
        return self.text

    def cpu(self):
        return cpu_seconds(self.proc.pid)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)
        self.log.close()


def all_read(text):
    return counter(text, "cepheus_records_read_total")


def until_committed(d, expected, timeout=900):
    """Polls until the daemon has read `expected` input records and every
    record it reads (re-keying topics included) has stopped coming for half a
    second: caught up, it commits within state.commit_interval (100 ms) of
    its last record. Returns (wall time of the first input record, wall time
    of the last)."""
    deadline = time.time() + timeout
    first = last = None
    settled_at, settled_count = None, -1
    while time.time() < deadline:
        time.sleep(0.05)
        text = d.poll()
        n = input_records(text)
        if first is None and n > 0:
            first = time.time()
        if n < expected:
            continue
        last = last or time.time()
        total = all_read(text)
        if total != settled_count:
            settled_count, settled_at = total, time.time()
        elif time.time() - settled_at > 0.5 and counter(text, COMMIT + "_count") > 0:
            return first, last
    raise SystemExit(f"the daemon did not commit {expected} records in {timeout} s")


def read_alerts(work, topic):
    return sorted(reduce_alert(json.loads(l)) for l in read_topic(work, topic))


def bare(build, brokers, n):
    out = sh(f"{build}/tests/bare_consumer", brokers, "events", "bare", str(n))
    got = dict(zip(out.split()[::2], out.split()[1::2]))
    if int(got["records"]) < n:
        raise SystemExit(f"the bare consumer read {got['records']} of {n} records")
    return n / float(got["cpu_s"]), float(got["cpu_s"])


def full_run(cepheus, work, brokers, rules, n, name="full"):
    port = free_port()
    d = Daemon(cepheus, config(work, name, brokers, rules, port, "events", idle="2s"), port, work, name)
    perf = None
    if "--perf" in sys.argv:  # a profile of the whole run, kept as WORK/perf.data (with --keep)
        perf = subprocess.Popen(["perf", "record", "-F", "999", "--call-graph", "dwarf,16384", "-p",
                                 str(d.proc.pid), "-o", f"{work}/perf.data"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first, last = until_committed(d, n)
    if perf:
        perf.send_signal(signal.SIGINT)
        perf.wait()
    cpu = d.cpu()
    threads = thread_cpu(d.proc.pid, cpu)
    peak, _ = memory(d.proc.pid)
    text = d.text
    time.sleep(8)  # the idle timeout moves the watermark to the wall clock: every window closes, as replay's end does
    d.poll()
    d.stop()
    # Read a second at least: a run shorter than the polling gives no rate
    # (use --events 100000 or more for the latency part to mean anything).
    return {"cpu": cpu, "wall": max(last - first, 1.0), "peak": peak, "anon": d.peak_anon,
            "commits": counter(text, COMMIT + "_count"), "text": text, "threads": threads}


def thread_cpu(pid, total):
    """CPU seconds by thread name (librdkafka's broker threads together), and
    the threads gone by then (each commit's LMDB writer) as the rest."""
    by = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
            name = "main thread" if tid == str(pid) else re.sub(r"^rdk:broker.*", "rdk:broker*", name)
            by[name] = by.get(name, 0.0) + cpu_seconds(pid, tid)
        except OSError:
            pass  # ended meanwhile
    by["ended threads (LMDB's writer)"] = max(0.0, total - sum(by.values()))
    return by


def latency_run(cepheus, work, brokers, rules, gen, rate):
    port = free_port()
    half_n = rate * 20
    d = Daemon(cepheus, config(work, "half", brokers, rules, port, "events-half"), port, work, "half")
    while counter(d.poll(), "cepheus_state_restore_seconds_count") == 0:
        time.sleep(0.2)  # not assigned yet
    feed = subprocess.Popen(gen + ["--events", str(half_n), "--kafka", brokers, "--topic", "events-half",
                                   "--rate", str(rate)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    warm = None
    while True:
        time.sleep(0.2)
        text = d.poll()
        if warm is None and input_records(text) >= half_n / 10:
            warm = text
        if warm is not None:
            LAG[0] = max([LAG[0]] + [float(v) for v in re.findall(r'^cepheus_consumer_lag\{partition="\d+"\} (\S+)', text, re.M)])
        if input_records(text) >= half_n:
            break
    time.sleep(1.0)
    text = minus(d.poll(), warm)
    feed.wait()
    d.stop()
    return text


def histogram_max(text, metric):
    """The upper bound of the highest bucket holding a sample ('> LAST' past the last bound)."""
    buckets = sorted((float("inf") if le == "+Inf" else float(le), float(v)) for le, v in
                     re.findall(r'^' + metric + r'_bucket\{le="([^"]+)"\} (\S+)', text, re.M))
    total = buckets[-1][1] if buckets else 0
    for le, v in buckets:
        if v >= total:
            return le
    return float("nan")


def side_by_side(work, brokers, rules, n, variants, rounds):
    """Events per daemon CPU-second of two variants (label, cepheus binary,
    extra state options), in alternating rounds on the same broker and topic
    (each run its own group, changelog and state), and the median of the
    per-round ratios."""
    ratios = []
    for i in range(rounds):
        got = []
        for j, (label, cepheus, extra) in enumerate(variants):
            name = f"ab{i}v{j}"
            for topic, parts in ((f"{name}-changelog", PARTITIONS), (f"alerts-{name}", 1)):
                sh(BROKER, "topic", f"{work}/broker", topic, str(parts))
            EXTRA_STATE[0] = extra
            r = full_run(cepheus, work, brokers, rules, n, name)
            got.append((n / r["cpu"], r["commits"]))
        ratios.append(got[0][0] / got[1][0])
        print(f"round {i + 1}: " + ", ".join(f"{label}: {g[0]:,.0f} events per CPU-second ({g[1]:.0f} commits)"
                                              for (label, _, _), g in zip(variants, got)) +
              f"; ratio {ratios[-1]:.2f}", flush=True)
    ratios.sort()
    print(f"{variants[0][0]} / {variants[1][0]}: median {ratios[len(ratios) // 2]:.2f} "
          f"(min {ratios[0]:.2f}, max {ratios[-1]:.2f}) over {rounds} rounds")


def latency_line(text, rate):
    return (f"latency at {rate:,} events/s: p50 {quantile(text, 0.5, LATENCY) * 1000:.1f} ms, "
            f"p99 {quantile(text, 0.99, LATENCY) * 1000:.1f} ms, max <= {histogram_max(text, LATENCY) * 1000:.0f} ms "
            f"over {counter(text, LATENCY + '_count'):.0f} alerts (target p99 <= commit_interval 100 ms + 50 ms); "
            f"a commit takes p50 {quantile(text, 0.5, COMMIT) * 1000:.1f} ms, "
            f"p99 {quantile(text, 0.99, COMMIT) * 1000:.1f} ms; {counter(text, COMMIT + '_count'):.0f} commits; "
            f"largest consumer lag seen {LAG[0]:,.0f} records")


# The rules of the issue's table (v1's six; `card_testing` keys on card_id
# and, without re-keying, runs per input partition as it did in v1).
V1_RULES = ("account_takeover", "card_testing", "login_country_jump", "multi_country_orders", "spend_velocity",
            "unpaid_order")
LAG = [0.0]
EXTRA_STATE = [""]
# The settings for a daemon whose keys outnumber its memory (deploy/README.md).
MEMORY_SETTING = (", max_resident_keys: 1000, commit_records: 5000", "queued.min.messages: 10000")


def distinct_keys(cepheus, work, brokers, rules, k, name="keys", setting=(None, None)):
    """K events of K distinct users, produced through the broker's console producer (once), read by
    a daemon of group `name` with `setting` (its `state:` additions, its `kafka.consumer` properties)."""
    if name == "keys":
        produce_distinct_keys(work, k)
    else:
        for topic, parts in ((f"alerts-{name}", 1), (f"{name}-changelog", PARTITIONS)):
            sh(BROKER, "topic", f"{work}/broker", topic, str(parts))
    port = free_port()
    d = Daemon(cepheus, config(work, name, brokers, rules, port, "keys", state=setting[0], consumer=setting[1]),
               port, work, name)
    until_committed(d, k)
    time.sleep(1.0)  # the engines' gauges are updated every 0.5 s
    text = d.poll()
    peak, _ = memory(d.proc.pid)
    d.stop()
    return counter(text, "cepheus_keys_active"), counter(text, "cepheus_keys_cold"), peak, d.peak_anon


def produce_distinct_keys(work, k):
    rng = random.Random(7)
    t0 = 1700000000000
    lines = []
    for i in range(k):
        user = f"k{i}"
        ts = t0 + i * 300000 // k
        if i % 2:
            e = {"id": f"d{i}", "type": "login", "ts": ts, "user_id": user, "country": rng.choice("FR DE NL IN US".split())}
        else:
            e = {"id": f"d{i}", "type": "order", "ts": ts, "user_id": user, "card_id": f"c{i}", "country": "FR",
                 "order_id": f"o{i}", "amount": round(rng.uniform(5, 500), 2), "category": "books"}
        lines.append(f"{user}\t{json.dumps(e, separators=(',', ':'))}\n")
    subprocess.run([BROKER, "produce", f"{work}/broker", "keys"], input="".join(lines).encode(), check=True,
                   capture_output=True)


def keys_line(keys, cold, peak, anon, k):
    return (f"keys: {keys:,.0f} keys holding state ({cold:,.0f} of them in LMDB only) after {k:,} events of "
            f"distinct users: peak RSS {peak:.0f} MiB, anonymous {anon:.0f} MiB (target <= 300 MB beyond LMDB's map)")


def main():
    args = sys.argv[1:]
    build = os.path.abspath(args[0])
    rules = os.path.abspath(args[1] if len(args) > 1 and not args[1].startswith("--") else
                            os.path.join(HERE, "..", "..", "rules"))
    opt = lambda name, default: int(args[args.index(name) + 1]) if name in args else default
    n, k = opt("--events", 1000000), opt("--keys", 1000000)
    if "--commit-interval" in args:
        EXTRA_STATE[0] = f", commit_interval: {args[args.index('--commit-interval') + 1]}"
    if "--state" in args:  # more `state:` settings, e.g. --state "max_resident_keys: 1000"
        EXTRA_STATE[0] += f", {args[args.index('--state') + 1]}"
    cepheus = f"{build}/cepheus"
    work = tempfile.mkdtemp(prefix="cepheus-throughput-")
    try:
        os.makedirs(f"{work}/broker")
        brokers = sh(BROKER, "start", f"{work}/broker").strip()
        for topic, parts in (("events", PARTITIONS), ("events-half", PARTITIONS), ("keys", PARTITIONS),
                             ("alerts-full", 1), ("alerts-half", 1), ("alerts-keys", 1), ("dead", 1),
                             ("full-changelog", PARTITIONS), ("half-changelog", PARTITIONS),
                             ("keys-changelog", PARTITIONS)):
            sh(BROKER, "topic", f"{work}/broker", topic, str(parts))
        gen = [cepheus, "gen", "--users", "20000", "--seed", "335", "--out-of-order", "2s"]
        sh(*gen, "--events", str(n), "--kafka", brokers, "--topic", "events")
        with open(f"{work}/events.jsonl", "w") as f:
            subprocess.run(gen + ["--events", str(n)], check=True, stdout=f, stderr=subprocess.DEVNULL)
        if "--v1" in args:
            rules = f"{work}/v1rules"
            os.makedirs(rules)
            for name in V1_RULES + ("events",):
                shutil.copy(os.path.join(HERE, "..", "..", "rules", f"{name}.rules"), rules)
        what = f"the six v1 rules ({', '.join(V1_RULES)}), no re-keying" if "--v1" in args else rules
        print(f"input: {n:,} events of `cepheus gen --users 20000 --seed 335`, {PARTITIONS} partitions; rules "
              f"{what}; {os.cpu_count()} cores", flush=True)

        if "--cadence" in args:  # full runs only, alternating two values of state.commit_records
            values = args[args.index("--cadence") + 1].split(",")
            side_by_side(work, brokers, rules, n, [(f"commit_records {v}", cepheus, f", commit_records: {v}")
                                                   for v in values], opt("--rounds", 3))
            return
        if "--against" in args:  # full runs only, alternating this build and another
            other = os.path.abspath(args[args.index("--against") + 1])
            side_by_side(work, brokers, rules, n, [(build, cepheus, ""), (other, f"{other}/cepheus", "")],
                         opt("--rounds", 3))
            return
        if "--keys-only" in args:  # the distinct keys' run alone
            print(keys_line(*distinct_keys(cepheus, work, brokers, rules, k), k), flush=True)
            return
        if "--latency-only" in args:  # the latency run alone, at a given rate
            text = latency_run(cepheus, work, brokers, rules, gen, opt("--latency-only", 1000))
            print(latency_line(text, opt("--latency-only", 1000)))
            return
        bare_rate, bare_cpu = bare(build, brokers, n)
        with open(f"{work}/replay.jsonl", "w") as out:
            replay_cpu, replay_peak = child_cpu([cepheus, "replay", "--rules", rules, "--events",
                                                 f"{work}/events.jsonl", "--out-of-order", "2s", "--quiet"], out)
        run = full_run(cepheus, work, brokers, rules, n)
        run_rate = n / run["cpu"]
        per_m = lambda cpu: cpu * 1e6 / n
        print(f"{'bare consumer':>14}: {bare_rate:>12,.0f} events per CPU-second ({per_m(bare_cpu):.2f} CPU-s per 1M)")
        print(f"{'replay':>14}: {n / replay_cpu:>12,.0f} events per CPU-second ({per_m(replay_cpu):.2f} CPU-s per 1M), "
              f"peak RSS {replay_peak:.0f} MiB")
        print(f"{'run':>14}: {run_rate:>12,.0f} events per CPU-second ({per_m(run['cpu']):.2f} CPU-s per 1M; "
              f"{n / run['wall']:,.0f} events/s wall, {run['commits']:.0f} commits, "
              f"{counter(run['text'], 'cepheus_keys_read_back_total'):,.0f} keys read back from LMDB), "
              f"peak RSS {run['peak']:.0f} MiB, anonymous {run['anon']:.0f} MiB")
        print(f"{'run by thread':>14}: " + ", ".join(f"{name} {per_m(c):.2f}" for name, c in
                                                     sorted(run["threads"].items(), key=lambda kv: -kv[1])
                                                     if per_m(c) >= 0.01) + " CPU-s per 1M")
        beyond = per_m(run["cpu"] - replay_cpu)
        print(f"run / bare consumer: {run_rate / bare_rate:.2f} (target >= 0.5)")
        print(f"daemon's cost beyond replay: {beyond:.2f} CPU-s per 1M events, {beyond / per_m(bare_cpu):.2f} x the "
              f"bare consumer's (target <= 1)", flush=True)

        with open(f"{work}/replay.jsonl") as f:
            replayed = sorted(reduce_alert(json.loads(l)) for l in f if l.strip())
        committed = read_alerts(work, "alerts-full")
        same = committed == replayed
        print(f"alerts: run committed {len(committed):,}, replay {len(replayed):,}: "
              f"{'equal' if same else 'DIFFERENT'}", flush=True)

        if "--run-only" in args:
            if not same:
                raise SystemExit("the run's committed alerts differ from replay's")
            return
        rate = max(1, int(n / run["wall"] / 2))
        text = latency_run(cepheus, work, brokers, rules, gen, rate)
        print(latency_line(text, rate) + " (half the run's rate)", flush=True)

        if "--skip-keys" not in args:
            print(keys_line(*distinct_keys(cepheus, work, brokers, rules, k), k), flush=True)
            got = distinct_keys(cepheus, work, brokers, rules, k, "keystight", MEMORY_SETTING)
            print(keys_line(*got, k).replace("keys:", f"keys, state: {{{MEMORY_SETTING[0][2:]}}} and "
                                                      f"kafka.consumer: {{{MEMORY_SETTING[1]}}}:", 1), flush=True)
        if not same:
            raise SystemExit("the run's committed alerts differ from replay's")
    finally:
        subprocess.run([BROKER, "stop", f"{work}/broker"], capture_output=True)
        if "--keep" not in args:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


if __name__ == "__main__":
    main()
