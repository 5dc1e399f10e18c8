#!/usr/bin/env python3
"""`cepheus backtest` against a computation of its own: on generated events
with the labels of the incidents `cepheus gen --labels` planted, the
precision and recall printed per rule and for the set equal those computed
here from `cepheus replay`'s alerts; `--baseline` with a rule whose threshold
changes reports the alerts gained and lost that two replays show; `--report`
writes a well-formed SVG with one line per rule that alerted.

    backtest_test.py CEPHEUS RULES_DIR
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

cepheus, rules = sys.argv[1], sys.argv[2]
work = tempfile.mkdtemp(prefix="cepheus-backtest-")
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def run(*args):
    return subprocess.run([cepheus, *args], check=True, capture_output=True, text=True).stdout


def replay(rule_paths, events):
    out = run("replay", "--rules", *rule_paths, "--events", events)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def identity(a):
    ids = ";".join(f"{n}={','.join(e.get('id', '') for e in evs)}" for n, evs in sorted(a["events"].items()))
    return (a["rule"], a["key"], a["reason"], ids)


try:
    events, labels = os.path.join(work, "events.jsonl"), os.path.join(work, "labels.jsonl")
    with open(events, "w") as f:
        subprocess.run([cepheus, "gen", "--events", "60000", "--seed", "5", "--fraud-rate", "0.005",
                        "--labels", labels], check=True, stdout=f, stderr=subprocess.DEVNULL)
    incidents = [json.loads(l) for l in open(labels)]
    check(len(incidents) > 100, f"gen --labels wrote one label per planted incident ({len(incidents)})")
    check({i["label"] for i in incidents} == {"multi_country", "takeover", "card_testing", "unpaid", "velocity"},
          "every kind of incident is labelled")

    # Precision and recall, computed here from replay's alerts and the labels.
    alerts = replay([rules], events)
    def true_for(a):
        return [n for n, i in enumerate(incidents)
                if i["key"] == a["key"] and a["first_ts"] <= i["to"] and a["last_ts"] >= i["from"]]
    want = {}
    for name in sorted({a["rule"] for a in alerts}) + [None]:
        mine = [a for a in alerts if name is None or a["rule"] == name]
        hits = [true_for(a) for a in mine]
        found = {n for h in hits for n in h}
        want[name or "all rules"] = (sum(1 for h in hits if h) / len(mine), len(found) / len(incidents))

    report_path = os.path.join(work, "report.svg")
    got = json.loads(run("backtest", "--rules", rules, "--events", events, "--labels", labels, "--format", "json",
                         "--report", report_path))
    by_rule = {r["rule"]: r for r in got["rules"]}
    by_rule["all rules"] = got["all"]
    for name, (precision, recall) in want.items():
        r = by_rule.get(name)
        check(r is not None and abs(r["precision"] - precision) < 1e-9 and abs(r["recall"] - recall) < 1e-9,
              f"{name}: precision {precision:.3f} and recall {recall:.3f} as computed from the planted incidents"
              f" (backtest: {r and r['precision']}, {r and r['recall']})")
    check(got["all"]["alerts"] == len(alerts), f"backtest counts replay's {len(alerts)} alerts")
    check(want["all rules"][1] > 0.9, f"the shipped rules find most planted incidents ({want['all rules'][1]:.3f})")
    text = run("backtest", "--rules", rules, "--events", events, "--labels", labels)
    check("precision" in text and "all rules" in text and f"{len(incidents)} incidents" in text,
          "the text report prints the table and the labels line")
    velocity = [n for n, i in enumerate(incidents) if i["label"] == "velocity"]
    found = {n for a in alerts if a["rule"] == "spend_velocity" for n in true_for(a) if n in velocity}
    by_label = text.split("incidents found, by label:\n")[-1].splitlines()
    line = next((l for l in by_label if l.split()[:1] == ["spend_velocity"]), "")
    check(f"velocity {len(found)}/{len(velocity)}" in line,
          f"incidents found by label: spend_velocity finds {len(found)} of {len(velocity)} velocity incidents")

    # The chart: well-formed SVG, one line per rule that alerted.
    svg = ET.parse(report_path).getroot()
    lines = {p.get("data-rule") for p in svg.iter("{http://www.w3.org/2000/svg}polyline")}
    check(svg.tag == "{http://www.w3.org/2000/svg}svg", "--report writes an SVG document")
    check(lines == {a["rule"] for a in alerts}, f"one line per rule that alerted ({len(lines)})")

    # A threshold change against the baseline: 4000 -> 2500 in spend_velocity.
    changed = os.path.join(work, "changed")
    os.mkdir(changed)
    for name in ("spend_velocity.rules", "events.rules"):
        shutil.copy(os.path.join(rules, name), changed)
    path = os.path.join(changed, "spend_velocity.rules")
    body = open(path).read()
    check("sum(o.amount) > 4000" in body, "spend_velocity has the threshold the test changes")
    open(path, "w").write(body.replace("sum(o.amount) > 4000", "sum(o.amount) > 2500"))
    base = [os.path.join(rules, "spend_velocity.rules"), os.path.join(rules, "events.rules")]
    new_ids = {identity(a) for a in replay([changed], events)}
    old_ids = {identity(a) for a in replay(base, events)}
    diff = json.loads(run("backtest", "--rules", changed, "--events", events, "--baseline", *base,
                          "--format", "json"))["baseline"]
    gained, lost = len(new_ids - old_ids), len(old_ids - new_ids)
    check(gained > 0, f"a lower threshold gains alerts ({gained})")
    check(diff == [{"rule": "spend_velocity", "gained": gained, "lost": lost}],
          f"--baseline reports {gained} gained and {lost} lost as two replays show: {diff}")
    text = run("backtest", "--rules", changed, "--events", events, "--baseline", *base, "--examples", "2")
    check(f"spend_velocity: {gained} gained, {lost} lost" in text and text.count("    + key") == 2,
          "the text diff names the rule with two examples of gained alerts")

    # A label that is not one is refused with its place, not skipped.
    bad = os.path.join(work, "bad.jsonl")
    open(bad, "w").write('{"key": "u1", "from": 5, "to": 9, "label": "x"}\n{"key": "u2", "from": 9, "to": 5}\n')
    r = subprocess.run([cepheus, "backtest", "--rules", rules, "--events", events, "--labels", bad],
                       capture_output=True, text=True)
    check(r.returncode == 1 and f"{bad}:2: a label is" in r.stderr, f"a bad label is refused with FILE:LINE: {r.stderr.strip()}")
finally:
    shutil.rmtree(work, ignore_errors=True)

if failures:
    sys.exit(f"{len(failures)} check(s) failed")
