#!/usr/bin/env python3
"""The Grafana dashboard and the Prometheus alerts use only what the daemon
exports: every metric name in their PromQL (and every label and label value
they match on) is in a live scrape of /metrics from `cepheus demo`, and every
expression parses (`promtool check rules` on a scratch file of them).

    metric_names_test.py PATH/TO/cepheus RULES_DIR[:RULES_DIR...] DASHBOARD.json ALERTS.yml

Names Prometheus makes itself (`up`) and the labels it adds (job, instance)
are allowed. Histograms are matched by their series: `x_bucket`, `x_sum`,
`x_count` must be exported; the bare `x` of a histogram is not a series and
fails. Needs python3-yaml (Debian package) and promtool.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import free_port  # noqa: E402

PROMETHEUS_SERIES = {"up"}             # made by Prometheus for every target
PROMETHEUS_LABELS = {"job", "instance"}  # added by Prometheus at scrape time
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
            "offset", "bool", "inf", "nan", "atan2"}
# Grafana's variables, replaced by values a real query would see.
GRAFANA_VARS = [("$__rate_interval", "5m"), ("$__interval", "1m"), ("$__range", "1h"),
                ("$job", "cepheus"), ("$instance", ".*")]


def dashboard_queries(path):
    """(where, expr) for every panel target, and the metric of every label_values() variable."""
    with open(path) as f:
        dash = json.load(f)
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append((f"{os.path.basename(path)}: panel '{p.get('title')}' {t.get('refId')}", t["expr"]))
            walk(p.get("panels", []))

    walk(dash.get("panels", []))
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        if v.get("type") == "query" and isinstance(q, str):
            m = re.fullmatch(r"\s*label_values\((.*),\s*([a-zA-Z_]\w*)\s*\)\s*", q)
            if not m:
                sys.exit(f"{path}: variable {v.get('name')}: cannot read query {q!r}")
            out.append((f"{os.path.basename(path)}: variable ${v.get('name')}", m.group(1)))
            out.append((f"{os.path.basename(path)}: variable ${v.get('name')} label", f"count by ({m.group(2)}) ({m.group(1)})"))
    return out


def alert_queries(path):
    with open(path) as f:
        doc = yaml.safe_load(f)
    return [(f"{os.path.basename(path)}: {r.get('alert') or r.get('record')}", r["expr"])
            for g in doc["groups"] for r in g["rules"]]


def substitute(expr):
    for var, value in GRAFANA_VARS:
        expr = expr.replace(var, value)
    return expr


def parse(expr):
    """Metric names, {metric: [(label, op, value)]} matchers, and grouping labels of a PromQL expression."""
    expr = substitute(expr)
    matchers = []   # (metric or None, label, op, value)
    names = []
    # Selectors: an optional name followed by {...}; strings inside are kept whole.
    sel = re.compile(r'([a-zA-Z_:][\w:]*)?\s*\{((?:[^{}"]|"(?:[^"\\]|\\.)*")*)\}')
    def take_selector(m):
        name = m.group(1)
        if name and name not in KEYWORDS:
            names.append(name)
        for lm in re.finditer(r'([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', m.group(2)):
            matchers.append((name, lm.group(1), lm.group(2), lm.group(3)))
        return " __SELECTOR__ "
    rest = sel.sub(take_selector, expr)
    rest = re.sub(r'"(?:[^"\\]|\\.)*"', " ", rest)   # remaining strings (e.g. label_replace args)
    rest = re.sub(r"\[[^\]]*\]", " ", rest)           # ranges and subqueries
    grouping = []
    def take_grouping(m):
        grouping.extend(l.strip() for l in m.group(2).split(",") if l.strip())
        return " "
    rest = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)", take_grouping, rest)
    for m in re.finditer(r"(?<![\w.$])([a-zA-Z_:][\w:]*)(\s*\()?", rest):
        word, call = m.group(1), m.group(2)
        if call or word in KEYWORDS or word == "__SELECTOR__":
            continue
        names.append(word)
    return names, matchers, grouping


def scrape_demo(binary, rules, wanted):
    """Union of the series and families seen in scrapes of a running demo, polled until `wanted` are all seen."""
    port = free_port()
    proc = subprocess.Popen([binary, "demo", "--seconds", "20", "--rate", "1000", "--rules", *rules.split(os.pathsep),
                             "--metrics", f"127.0.0.1:{port}", "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    series = {}      # sample name -> {label: set(values)}
    types = {}       # family name -> type
    scrapes = 0
    try:
        deadline = time.time() + 18
        while time.time() < deadline:
            time.sleep(1)
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            except OSError:
                if proc.poll() is not None:
                    break
                continue
            scrapes += 1
            for line in text.splitlines():
                if line.startswith("# TYPE "):
                    _, _, name, kind = line.split(None, 3)
                    types[name] = kind
                elif line and not line.startswith("#"):
                    m = re.match(r'([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s', line)
                    labels = series.setdefault(m.group(1), {})
                    for lm in re.finditer(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""):
                        labels.setdefault(lm.group(1), set()).add(lm.group(2))
            if scrapes >= 3 and wanted <= known_names(series, types):
                break
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    if scrapes == 0:
        sys.exit(f"FAIL no scrape of the demo's /metrics succeeded; demo said:\n{err}")
    return series, types


def known_names(series, types):
    """Names a query may use: every sample name, and counter/gauge families (a labelled one may have no sample yet)."""
    return set(series) | {n for n, k in types.items() if k in ("counter", "gauge", "untyped")} | PROMETHEUS_SERIES


def check_syntax(queries):
    """promtool parses every expression (as recording rules in a scratch file)."""
    rules = {"groups": [{"name": "syntax", "rules": [
        {"record": f"check:q{i}", "expr": substitute(e)} for i, (_, e) in enumerate(queries)]}]}
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump(rules, f)
    try:
        r = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True, text=True)
    finally:
        os.unlink(f.name)
    if r.returncode != 0:
        return [f"promtool cannot parse the queries: {r.stdout}{r.stderr}"]
    return []


def main():
    binary, rules, dashboard, alerts = sys.argv[1:5]
    queries = dashboard_queries(dashboard) + alert_queries(alerts)
    failures = check_syntax(queries)
    parsed = [(where, expr, *parse(expr)) for where, expr in queries]
    wanted = {n for _, _, names, _, _ in parsed for n in names}
    if len(queries) < 10 or not any(n.startswith("cepheus_") for n in wanted):
        failures.append(f"only {len(queries)} queries and names {sorted(wanted)} found: is the parser broken?")
    series, types = scrape_demo(binary, rules, wanted)
    known = known_names(series, types)
    all_labels = {l for labels in series.values() for l in labels} | PROMETHEUS_LABELS
    for where, expr, names, matchers, grouping in parsed:
        for n in names:
            if n not in known:
                hint = " (a histogram: use _bucket, _sum or _count)" if types.get(n) == "histogram" else ""
                failures.append(f"{where}: metric {n} is not exported by the daemon{hint}\n    {expr.strip()}")
        for metric, label, op, value in matchers:
            if label in PROMETHEUS_LABELS or label == "__name__":
                continue
            labels = series.get(metric, {}) if metric else {}
            if metric and metric in series and label not in labels:
                failures.append(f"{where}: {metric} has no label {label}\n    {expr.strip()}")
            elif metric and op == "=" and label in labels and value not in labels[label]:
                failures.append(f"{where}: {metric}{{{label}=\"{value}\"}} matches no exported series "
                                f"(values: {sorted(labels[label])})\n    {expr.strip()}")
        for label in grouping:
            if label not in all_labels:
                failures.append(f"{where}: groups by {label}, a label no exported series has\n    {expr.strip()}")
    for f in failures:
        print("FAIL", f)
    print(f"{len(queries)} queries, {len(wanted)} metric names, checked against "
          f"{len(series)} exported series names")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
