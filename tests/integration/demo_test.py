#!/usr/bin/env python3
"""`cepheus demo` end to end, on librdkafka's mock cluster: events flow from the
generator through Kafka into the engines, alerts come out on stdout as JSON,
malformed records are counted, and a real HTTP scrape of /metrics and /healthz
answers while it runs; `promtool check metrics` finds nothing to say about it.

The table rules of rules/tables fire on the demo's profiles and block list,
and the tables' metrics are exported; many_accounts_one_card, re-keyed by
card_id, fires on the demo's card rings; the demo-time aggregate of
rules/demo prints a window record per category every 10 seconds and alerts on
the planted gift-card spike.

    demo_test.py PATH/TO/cepheus RULES_DIR...
"""
import json
import subprocess
import sys
import threading
import time
import urllib.request
import os

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import free_port  # noqa: E402


def main():
    binary, rules = sys.argv[1], sys.argv[2:]
    port = free_port()
    proc = subprocess.Popen([binary, "demo", "--seconds", "32", "--rate", "1500", "--rules", *rules,
                             "--metrics", f"127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Read both pipes as the demo writes: a full pipe would stall its loop.
    chunks = {"out": [], "err": []}
    readers = [threading.Thread(target=lambda k=k, f=f: chunks[k].extend(f), daemon=True)
               for k, f in (("out", proc.stdout), ("err", proc.stderr))]
    for r in readers:
        r.start()
    time.sleep(27)  # after the spike's window has closed (the records counter is read here)
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    health = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
    proc.wait(timeout=60)
    for r in readers:
        r.join(timeout=10)
    out, err = "".join(chunks["out"]), "".join(chunks["err"])
    failures = []
    if proc.returncode != 0:
        failures.append(f"demo exited {proc.returncode}: {err}")
    if health.status != 200:
        failures.append(f"/healthz answered {health.status}")
    values = {}
    for line in metrics.splitlines():
        if line.startswith("cepheus_") and " " in line:
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    evaluated = values.get('cepheus_events_total{outcome="evaluated"}', 0)
    if evaluated < 1000:
        failures.append(f"only {evaluated} events evaluated by the time of the scrape")
    if 'cepheus_build_info{version="' not in metrics:
        failures.append("no cepheus_build_info")
    for name in values:
        if "user_id" in name or 'key="' in name or '"u1"' in name:
            failures.append(f"a label carries an entity id: {name}")
    lint = subprocess.run(["promtool", "check", "metrics"], input=metrics, capture_output=True, text=True)
    if lint.returncode != 0 or lint.stdout.strip() or lint.stderr.strip():
        failures.append(f"promtool check metrics: {lint.stdout}{lint.stderr}")
    for name in ("cepheus_events_total", "cepheus_alerts_total", "cepheus_alerts_suppressed_total",
                 "cepheus_runs_active", "cepheus_runs_evicted_total", "cepheus_keys_active",
                 "cepheus_event_to_alert_seconds", "cepheus_watermark_lag_seconds", "cepheus_build_info",
                 "cepheus_table_records_total", "cepheus_table_versions", "cepheus_table_lag",
                 "cepheus_table_bootstrap_seconds"):
        if f"# TYPE {name} " not in metrics:
            failures.append(f"{name} is not exported")
    lines = [json.loads(l) for l in out.splitlines() if l.strip()]
    alerts = [l for l in lines if "aggregate" not in l]
    records = [l for l in lines if "aggregate" in l]
    if not alerts:
        failures.append("no alert printed")
    fired = {a.get("rule") for a in alerts}
    for rule in ("new_account_big_order", "order_outside_home_country", "blocked_card_payment"):
        if rule not in fired:
            failures.append(f"the table rule {rule} raised no alert (rules that fired: {sorted(fired)})")
    # Re-keyed by card_id: the rings' cards are used from several partitions.
    if "many_accounts_one_card" not in fired:
        failures.append(f"many_accounts_one_card (re-keyed by card_id) raised no alert (fired: {sorted(fired)})")
    if values.get('cepheus_rekey_forwarded_total{field="card_id"}', 0) <= 0:
        failures.append("no event forwarded to the card_id re-keying topic")
    if not any(name.startswith('cepheus_watermark_lag_seconds{partition="card_id/') for name in values):
        failures.append("no watermark of a card_id re-keying partition exported")
    # The aggregate (section 6.3): a record per category and closed window, and
    # the spike's alert on gift_cards.
    categories = {r["group"] for r in records if r["aggregate"] == "sales_spike_demo"}
    if len(categories) < 7:
        failures.append(f"window records of only {sorted(categories)}")
    spikes = [a for a in alerts if a.get("rule") == "sales_spike_demo"]
    if not any(a.get("key") == "gift_cards" and a.get("reason") == "aggregate" for a in spikes):
        failures.append(f"no aggregate alert on the gift_cards spike (aggregate alerts: {[a.get('key') for a in spikes]})")
    if values.get('cepheus_aggregate_records_total{aggregate="sales_spike_demo"}', 0) <= 0:
        failures.append("cepheus_aggregate_records_total did not count the records")
    profiles = values.get('cepheus_table_keys{table="profiles"}', 0)
    if profiles < 2000:
        failures.append(f"the profiles table holds {profiles} keys, not 2000")
    for a in alerts:
        for field in ("alert_id", "rule", "key", "severity", "reason", "events", "message"):
            if field not in a:
                failures.append(f"alert without {field}: {a}")
                break
    summary = [l for l in err.splitlines() if l.startswith("cepheus demo:") and "malformed" in l]
    if not summary or summary[-1].split()[-2] == "0":
        failures.append(f"no malformed record counted: {summary}")
    for f in failures:
        print("FAIL", f)
    print(f"demo: {len(alerts)} alerts, {len(records)} window records, {int(evaluated)} evaluated at the scrape; "
          f"{summary[-1] if summary else ''}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
