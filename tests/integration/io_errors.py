#!/usr/bin/env python3
"""Every command's I/O errors are values: a missing path, a directory where a
file belongs, an output that cannot be written. Each must end with a one-line
error naming the path and exit code 1, 2 or 78 (the daemon's "configuration"),
never an abort or another signal.

    io_errors.py CEPHEUS RULES_DIR
"""
import os
import subprocess
import sys
import tempfile


def main(cepheus, rules):
    with tempfile.TemporaryDirectory() as tmp:
        return check(cepheus, rules, tmp)


def check(cepheus, rules, tmp):
    events = os.path.join(tmp, "events.jsonl")
    with open(events, "w") as f:
        f.write('{"type":"order","ts":1,"user_id":"u"}\n')
    missing = os.path.join(tmp, "missing")
    unwritable = os.path.join(missing, "out")
    cases = [
        (["check", missing], missing),
        (["check", tmp], tmp),  # a directory with no .rules files
        (["check", rules, "--config", missing], missing),
        (["check", rules, "--config", tmp], tmp),
        (["explain", missing], missing),
        (["replay", "--rules", missing, "--events", events], missing),
        (["replay", "--rules", rules, "--events", missing], missing),
        (["replay", "--rules", rules, "--events", tmp], tmp),
        (["replay", "--rules", rules, "--events", events, "--late", unwritable], unwritable),
        (["replay", "--rules", rules, "--events", events, "--config", tmp], tmp),
        (["test", missing], missing),
        (["run", "--config", missing], missing),
        (["run", "--config", tmp], tmp),
    ]
    failures = 0
    for args, path in cases:
        p = subprocess.run([cepheus] + args, capture_output=True, text=True, timeout=60)
        err = p.stderr.strip()
        problems = []
        if p.returncode not in (1, 2, 78):
            problems.append(f"exit {p.returncode}")
        if "terminate called" in err or "what():" in err:
            problems.append("an uncaught exception")
        if path not in err:
            problems.append("no mention of the path")
        if problems:
            failures += 1
            print(f"FAIL cepheus {' '.join(args)}: {', '.join(problems)}\n  {err[:300]}")
        else:
            print(f"ok   cepheus {' '.join(args)}: exit {p.returncode}: {err.splitlines()[-1][:120]}")
    if failures:
        print(f"{failures} of {len(cases)} commands did not report their I/O error as a value")
        return 1
    print(f"all {len(cases)} commands report I/O errors as values")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
