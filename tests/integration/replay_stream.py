#!/usr/bin/env python3
"""`cepheus replay` streams its input in bounded memory.

- From a pipe, an alert is written as soon as its events are read, while
  the input is still open (it used to wait for the end of the input).
- A 200 MB line is skipped as malformed ("larger than N bytes") without
  being held: the process stays under 64 MB, and the events around it are
  evaluated.
- --max-event-bytes sets the limit.

    replay_stream.py CEPHEUS RULES_DIR
"""
import os
import resource
import select
import subprocess
import sys
import tempfile
import time

RULE = "rule two_orders\n  key user_id\n  match o: order{2}\n  within 1h\n"


def order(i, user="u1"):
    return '{"id":"e%d","type":"order","ts":%d,"user_id":"%s"}\n' % (i, 1000 + i, user)


def alert_while_input_open(cepheus, rules):
    p = subprocess.Popen([cepheus, "replay", "--rules", rules, "--events", "-", "--quiet"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdin.write((order(1) + order(2)).encode())
    p.stdin.flush()
    ready, _, _ = select.select([p.stdout], [], [], 10)
    got = p.stdout.readline().decode() if ready else ""
    p.stdin.close()
    p.wait(timeout=10)
    assert '"rule":"two_orders"' in got, f"no alert while the input was open (got {got!r})"
    print("ok   an alert is written while standard input is still open")


def huge_line(cepheus, rules, tmp):
    path = os.path.join(tmp, "events.jsonl")
    with open(path, "w") as f:
        f.write(order(1))
        f.write('{"type":"order","ts":1500,"user_id":"u1","blob":"')
        chunk = "x" * (1 << 20)
        for _ in range(200):
            f.write(chunk)
        f.write('"}\n')
        f.write(order(2))
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    r = subprocess.run([cepheus, "replay", "--rules", rules, "--events", path], capture_output=True, text=True,
                       timeout=120)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert r.returncode == 0, r.stderr
    assert ":2: malformed event skipped: event is larger than 1048576 bytes" in r.stderr, r.stderr
    assert r.stdout.count('"rule":"two_orders"') == 1, r.stdout
    assert "1 malformed" in r.stderr, r.stderr
    assert peak_kb < 64 * 1024, f"peak RSS {peak_kb} KB for a 200 MB line (before: {before} KB)"
    print(f"ok   a 200 MB line is skipped as malformed; peak RSS {peak_kb // 1024} MB")


def max_event_bytes(cepheus, rules, tmp):
    path = os.path.join(tmp, "small.jsonl")
    with open(path, "w") as f:
        f.write(order(1) + order(2))
    r = subprocess.run([cepheus, "replay", "--rules", rules, "--events", path, "--max-event-bytes", "40"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("event is larger than 40 bytes") == 2, r.stderr
    assert r.stdout == "", r.stdout
    print("ok   --max-event-bytes refuses longer events")


def main(cepheus):
    with tempfile.TemporaryDirectory() as tmp:
        rules = os.path.join(tmp, "r.rules")
        with open(rules, "w") as f:
            f.write(RULE)
        alert_while_input_open(cepheus, rules)
        huge_line(cepheus, rules, tmp)
        max_event_bytes(cepheus, rules, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
