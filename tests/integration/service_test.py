#!/usr/bin/env python3
"""The cepheus process as systemd sees it, on librdkafka's mock cluster (the
daemon of `cepheus demo` is the daemon of `cepheus run`, with the same signal
handling, notify messages and log format):

- a fake NOTIFY_SOCKET (a datagram socket bound here, as systemd does) hears
  STATUS= lines, then READY=1, then WATCHDOG=1 at most every WatchdogSec/2;
- stderr is a journald stream (JOURNAL_STREAM names it): every line starts with
  a <N> priority and carries no timestamp;
- SIGHUP with a broken rule file: RELOADING=1 then READY=1, the diagnostic
  (file:line:col) logged at error priority, the reload counted as an error and
  cepheus_rules_last_reload_successful 0, alerts still flowing;
- SIGHUP with a good set: counted as a success, the new rule count exported;
- SIGTERM: STOPPING=1 and exit 0 within 20 s.

    service_test.py PATH/TO/cepheus RULES_DIR
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
from testlib import FakeSystemd, free_port, samples, scrape  # noqa: E402


def scrape_samples(port):
    return samples(scrape(port))


def main():
    binary, rules = sys.argv[1], sys.argv[2]
    failures = []
    work = tempfile.mkdtemp(prefix="cepheus-service-")
    try:
        rules_dir = os.path.join(work, "rules")
        shutil.copytree(rules, rules_dir, ignore=shutil.ignore_patterns("tests", "*.md"))
        n_rules = 0  # rule declarations (a file may hold only counters or aggregates)
        for f in os.listdir(rules_dir):
            if f.endswith(".rules"):
                with open(os.path.join(rules_dir, f)) as text:
                    n_rules += sum(1 for line in text if line.startswith("rule "))
        systemd = FakeSystemd(os.path.join(work, "notify"))
        err_path = os.path.join(work, "stderr")
        err = open(err_path, "w")
        st = os.fstat(err.fileno())
        env = dict(os.environ, NOTIFY_SOCKET=os.path.join(work, "notify"), WATCHDOG_USEC="6000000",
                   JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
        port = free_port()
        proc = subprocess.Popen([binary, "demo", "--seconds", "120", "--rate", "1000", "--quiet",
                                 "--rules", rules_dir, "--metrics", f"127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=err, env=env)
        try:
            ready = systemd.wait_for("READY=1")
            if ready < 0:
                failures.append("no READY=1 within 30 s")
                return failures
            steps = [m for _, m in systemd.messages[:ready] if m.startswith("STATUS=")]
            if len(steps) < 4:
                failures.append(f"expected a STATUS= line per start-up step before READY=1, got {steps}")
            time.sleep(5)  # alerts flow, the watchdog is pinged

            # A broken rule file: refused, old rules go on.
            broken = os.path.join(rules_dir, "broken.rules")
            with open(broken, "w") as f:
                f.write("rule broken\n  key user_id\n  match o: order{3\n  within 2m\n")
            alerts_before = scrape_samples(port)
            mark = len(systemd.messages)
            proc.send_signal(signal.SIGHUP)
            reloading = systemd.wait_for("RELOADING=1", mark)
            ready2 = systemd.wait_for("READY=1", max(reloading, mark))
            if reloading < 0 or ready2 < reloading:
                failures.append("SIGHUP: expected RELOADING=1 then READY=1")
            time.sleep(2)
            m = scrape_samples(port)
            errors = m.get('cepheus_rule_reloads_total{outcome="error"}')
            if errors != 1:
                failures.append(f"the refused reload is not counted: {errors}")
            if m.get("cepheus_rules_last_reload_successful") != 0:
                failures.append("cepheus_rules_last_reload_successful is not 0 after a refused reload")
            if m.get("cepheus_rules_loaded") != n_rules:
                failures.append(f"the running rules changed after a refused reload: {m.get('cepheus_rules_loaded')}")
            evaluated = 'cepheus_events_total{outcome="evaluated"}'
            if m.get(evaluated, 0) <= alerts_before.get(evaluated, 0):
                failures.append("events stopped flowing after a refused reload")

            # Fixed: the reload succeeds and the new rule runs.
            with open(broken, "w") as f:
                f.write("rule fixed\n  key user_id\n  match o: order{3}\n  within 2m\n")
            mark = len(systemd.messages)
            proc.send_signal(signal.SIGHUP)
            reloading = systemd.wait_for("RELOADING=1", mark)
            if reloading < 0 or systemd.wait_for("READY=1", reloading) < 0:
                failures.append("second SIGHUP: expected RELOADING=1 then READY=1")
            time.sleep(1)
            m = scrape_samples(port)
            if m.get('cepheus_rule_reloads_total{outcome="success"}') != 1:
                failures.append("the good reload is not counted as a success")
            if m.get("cepheus_rules_last_reload_successful") != 1:
                failures.append("cepheus_rules_last_reload_successful is not 1 after a good reload")
            if m.get("cepheus_rules_loaded") != n_rules + 1:
                failures.append(f"expected {n_rules + 1} rules after the reload, got {m.get('cepheus_rules_loaded')}")
            if 'cepheus_runs_active{rule="fixed"}' not in m:
                failures.append("the new rule has no series")

            mark = len(systemd.messages)
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=20)
            took = time.monotonic() - started
            if code != 0:
                failures.append(f"SIGTERM: exit {code}")
            if systemd.wait_for("STOPPING=1", mark, timeout=2) < 0:
                failures.append("no STOPPING=1 on SIGTERM")
            print(f"stopped {took:.1f} s after SIGTERM")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

        systemd.stop()
        pings = [t for t, m in systemd.messages if m == "WATCHDOG=1"]
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        # WatchdogSec=6s: pings every 2 s, never more than 3 s apart (half of it),
        # which leaves the loop a second of slack on a loaded 2-core machine.
        if len(pings) < 3 or max(gaps) > 3.0:
            failures.append(f"watchdog: {len(pings)} pings, largest gap {max(gaps, default=0):.2f} s "
                            "(WatchdogSec=6s wants one at least every 3 s)")

        err.close()
        lines = open(err_path).read().splitlines()
        daemon_lines = [l for l in lines if not l.startswith(("cepheus demo:", "  "))]
        bad = [l for l in daemon_lines if not re.match(r"^<[0-7]>", l)]
        if bad:
            failures.append(f"log lines without a <N> priority under journald: {bad[:3]}")
        stamped = [l for l in daemon_lines if re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", l)]
        if stamped:
            failures.append(f"log lines with a timestamp under journald: {stamped[:3]}")
        if not any(re.match(r"^<3>.*broken\.rules:\d+:\d+: error: ", l) for l in daemon_lines):
            failures.append("the refused rule's diagnostic (file:line:col) is not logged at error priority")
        print(f"{len(daemon_lines)} log lines, {len(pings)} watchdog pings, largest gap "
              f"{max(gaps, default=0):.2f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return failures


if __name__ == "__main__":
    problems = main()
    for p in problems:
        print("FAIL:", p)
    print("service test:", "failed" if problems else "passed")
    sys.exit(1 if problems else 0)
