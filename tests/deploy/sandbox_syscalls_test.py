#!/usr/bin/env python3
"""What the daemon does fits the unit's sandbox: every system call that
`cepheus check` (ExecStartPre) and `cepheus demo` (the daemon of `cepheus run`
on librdkafka's mock cluster, LMDB state, metrics served and scraped) make
under strace is allowed by the unit's SystemCallFilter=, every socket they
open is of a family in RestrictAddressFamilies=, and no mapping is writable
and executable at once (MemoryDenyWriteExecute=). The demo runs with
NOTIFY_SOCKET and WATCHDOG_USEC set, as under the unit, so the sd_notify path
is traced too, and it must send READY=1 and WATCHDOG=1 (Type=notify and
WatchdogSec= rely on them).

    sandbox_syscalls_test.py UNIT PATH/TO/cepheus RULES_DIR CONFIG

This stands in for running the unit itself (reliability test H6), which needs
systemd as PID 1: the filter groups are expanded with
`systemd-analyze syscall-filter`, so they are those of the installed systemd.
It does not cover TLS or broker names in DNS (the mock cluster is on
127.0.0.1), though glibc's AI_ADDRCONFIG netlink query shows up all the same.
"""
import functools
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import free_port  # noqa: E402


@functools.lru_cache(maxsize=None)
def expand(group):
    """The system calls of a systemd filter group (or a single call), nested groups expanded."""
    if not group.startswith("@"):
        return frozenset([group])
    r = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager", group], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAIL systemd-analyze syscall-filter {group}: {r.stderr}")
    out = set()
    for line in r.stdout.splitlines()[1:]:   # the first line is the group's own name
        line = line.strip()
        if line and not line.startswith("#"):
            out |= expand(line)
    return frozenset(out)


def sandbox(unit):
    """(allowed system calls or None, denied system calls, allowed families or None, MemoryDenyWriteExecute)."""
    allowed, denied, families, mdwx = None, set(), None, False
    with open(unit) as f:
        for line in f:
            line = line.strip()
            if line.startswith("SystemCallFilter="):
                value = line.split("=", 1)[1]
                invert = value.startswith("~")
                calls = set().union(*(expand(g) for g in value.lstrip("~").split()))
                if invert:
                    if allowed is None:
                        denied |= calls
                    else:
                        allowed -= calls
                else:
                    allowed = calls if allowed is None else allowed | calls
            elif line.startswith("RestrictAddressFamilies="):
                families = set(line.split("=", 1)[1].split())
            elif line.startswith("MemoryDenyWriteExecute="):
                mdwx = line.split("=", 1)[1] in ("yes", "true", "1", "on")
    return allowed, denied, families, mdwx


def trace(argv, out, during=None, env=None):
    proc = subprocess.Popen(["strace", "-f", "-qq", "-o", out] + argv, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        if during:
            during()
        _, err = proc.communicate(timeout=120)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if proc.returncode != 0:
        sys.exit(f"FAIL strace {' '.join(argv)} exited {proc.returncode}:\n{err}")
    with open(out) as f:
        return f.read()


def main():
    unit, binary, rules, config = sys.argv[1:5]
    allowed, denied, families, mdwx = sandbox(unit)
    if allowed is None and not denied:
        sys.exit(f"FAIL {unit} has no SystemCallFilter=")
    port = free_port()

    def scrape():
        for _ in range(30):
            time.sleep(1)
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read()
                time.sleep(3)   # and some more events, commits and alerts
                return
            except OSError:
                pass
        sys.exit("FAIL the traced demo never served /metrics")

    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        # Read the notifications as systemd does, all along: an unread socket
        # fills after a few datagrams and blocks the sender.
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(os.path.join(tmp, "notify"))
        notify.settimeout(0.2)
        messages, done = [], threading.Event()

        def receive():
            while not done.is_set():
                try:
                    messages.append(notify.recv(4096).decode(errors="replace"))
                except socket.timeout:
                    pass

        reader = threading.Thread(target=receive, daemon=True)
        reader.start()
        env = {k: v for k, v in os.environ.items() if k not in ("WATCHDOG_PID", "LISTEN_PID")}
        env.update(NOTIFY_SOCKET=os.path.join(tmp, "notify"), WATCHDOG_USEC="2000000")
        traces = {
            "cepheus check": trace([binary, "check", rules, "--config", config], os.path.join(tmp, "check")),
            "cepheus demo": trace([binary, "demo", "--seconds", "10", "--rules", rules, "--metrics",
                                   f"127.0.0.1:{port}", "--quiet"], os.path.join(tmp, "demo"), scrape, env),
        }
        done.set()
        reader.join()
        notify.close()
    for state in ("READY=1", "WATCHDOG=1"):
        if not any(state in m.split("\n") for m in messages):
            failures.append(f"the demo never sent {state} to NOTIFY_SOCKET (got {len(messages)} messages)")
    for what, text in traces.items():
        calls = {}
        for m in re.finditer(r"^\d+\s+([a-z_][a-z0-9_]*)\(", text, re.M):
            calls[m.group(1)] = calls.get(m.group(1), 0) + 1
        # A trace that missed the daemon's work would pass vacuously.
        needed = {"cepheus check": {"openat", "read"},
                  "cepheus demo": {"flock", "bind", "accept", "fdatasync", "clone3", "sendmsg"}}[what]
        if not needed <= set(calls):
            failures.append(f"{what}: the trace lacks {sorted(needed - set(calls))}; did strace follow it?")
        for call in sorted(calls):
            if (allowed is not None and call not in allowed) or call in denied:
                failures.append(f"{what}: {call}() ({calls[call]} calls) is not allowed by SystemCallFilter=")
        used_families = set(re.findall(r"\bsocket\((AF_[A-Z0-9]+)", text))
        for fam in sorted(used_families - (families or used_families)):
            failures.append(f"{what}: opens {fam} sockets, not in RestrictAddressFamilies=")
        if mdwx:
            for line in text.splitlines():
                if (re.search(r"\bmmap\(.*PROT_WRITE\|PROT_EXEC|\bmmap\(.*PROT_EXEC\|PROT_WRITE", line)
                        or re.search(r"\b(pkey_)?mprotect\(.*PROT_EXEC", line)):
                    failures.append(f"{what}: MemoryDenyWriteExecute= refuses: {line.strip()}")
                    break
        print(f"{what}: {sum(calls.values())} system calls of {len(calls)} kinds, "
              f"socket families {sorted(used_families)}")
    print(f"sd_notify: {len(messages)} messages, {sum('WATCHDOG=1' in m for m in messages)} watchdog pings")
    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
