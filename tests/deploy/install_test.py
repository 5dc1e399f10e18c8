#!/usr/bin/env python3
"""`cmake --install` lays cepheus out as a Debian package would, the installed
config and rules pass the installed `cepheus check --config`, and the unit,
the config and the FHS paths agree with each other.

    install_test.py CMAKE BUILD_DIR SOURCE_DIR

1. `DESTDIR=tmp cmake --install BUILD --prefix /usr`: exactly the expected
   files, nothing else (no /usr/etc, no rule tests).
2. The installed binary checks the installed rules with the installed config
   (paths under DESTDIR given on the command line), and its effective config
   has rules.path = the unit's ExecStartPre rules, state.directory =
   /var/lib/<StateDirectory>, the config under /etc/<ConfigurationDirectory>.
3. An upgrade (install again) keeps an edited config and a removed rule
   removed; the shipped copies in share/cepheus are refreshed.
4. --prefix /usr/local: the unit runs /usr/local/bin/cepheus, config stays in
   /etc/cepheus.
"""
import glob
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import unit_settings  # noqa: E402


def install(cmake, build, destdir, prefix):
    env = dict(os.environ, DESTDIR=destdir)
    r = subprocess.run([cmake, "--install", build, "--prefix", prefix], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAIL cmake --install --prefix {prefix} exited {r.returncode}:\n{r.stdout}{r.stderr}")
    return r.stdout


def files_under(root):
    out = set()
    for d, _, names in os.walk(root):
        for n in names:
            out.add("/" + os.path.relpath(os.path.join(d, n), root))
    return out


def effective_config(binary, config):
    """`cepheus run --print-config` as {"section.key": value}, with no CEPHEUS_* override from this environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CEPHEUS_")}
    r = subprocess.run([binary, "run", "--config", config, "--print-config"], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAIL cepheus run --print-config exited {r.returncode}: {r.stderr}")
    out, section = {}, ""
    for line in r.stdout.splitlines():
        m = re.match(r"^(\s*)([\w]+):\s*(.*)$", line)
        if not m:
            continue
        if not m.group(1):
            section = m.group(2)
        else:
            out[f"{section}.{m.group(2)}"] = m.group(3).strip('"')
    return out


def main():
    cmake, build, source = sys.argv[1:4]
    failures = []
    rules = sorted(os.path.basename(p) for p in glob.glob(os.path.join(source, "rules", "*.rules")))
    table_rules = sorted(os.path.basename(p) for p in glob.glob(os.path.join(source, "rules", "tables", "*.rules")))
    demo_rules = sorted(os.path.basename(p) for p in glob.glob(os.path.join(source, "rules", "demo", "*.rules")))
    if not rules:
        sys.exit(f"FAIL no rules in {source}/rules")
    with tempfile.TemporaryDirectory() as tmp:
        d = os.path.join(tmp, "usr-prefix")
        install(cmake, build, d, "/usr")

        # 1. The layout, exactly.
        expected = {
            "/usr/bin/cepheus",
            "/etc/cepheus/cepheus.yaml",
            "/usr/lib/systemd/system/cepheus.service",
            "/usr/lib/sysusers.d/cepheus.conf",
            "/usr/share/cepheus/cepheus.yaml",
            "/usr/share/cepheus/prometheus/cepheus-alerts.yml",
            "/usr/share/cepheus/prometheus/cepheus-alerts.test.yml",
            "/usr/share/cepheus/grafana/cepheus.json",
            "/usr/share/doc/cepheus/README.md",
        } | {f"/etc/cepheus/rules/{r}" for r in rules} | {f"/usr/share/cepheus/rules/{r}" for r in rules} \
          | {f"/usr/share/cepheus/rules/tables/{r}" for r in table_rules} \
          | {f"/usr/share/cepheus/rules/demo/{r}" for r in demo_rules}  # examples that read tables; the demo's time scale
        got = files_under(d)
        for p in sorted(expected - got):
            failures.append(f"not installed: {p}")
        for p in sorted(got - expected):
            failures.append(f"installed but not expected: {p}")
        binary = d + "/usr/bin/cepheus"
        if not os.access(binary, os.X_OK):
            failures.append("/usr/bin/cepheus is not executable")
            return report(failures)
        with open(d + "/usr/lib/systemd/system/cepheus.service") as a, \
                open(os.path.join(source, "deploy/systemd/cepheus.service")) as b:
            if a.read() != b.read():
                failures.append("with --prefix /usr the installed unit differs from deploy/systemd/cepheus.service")

        # 2. The installed pieces agree and check.
        r = subprocess.run([binary, "check", d + "/etc/cepheus/rules", "--config", d + "/etc/cepheus/cepheus.yaml"],
                           capture_output=True, text=True)
        print(f"installed cepheus check: exit {r.returncode}: {r.stderr.strip().splitlines()[-1:]}")
        declared = 0  # rule declarations in the shipped files (a file may hold only counters or aggregates)
        for name in rules:
            with open(os.path.join(source, "rules", name)) as f:
                declared += sum(1 for line in f if line.startswith("rule "))
        if r.returncode != 0 or not re.search(rf"\b{declared} rules(, \d+ counters?)?(, \d+ aggregates?)?(, \d+ event types?)? OK", r.stderr):
            failures.append(f"installed config and rules do not check (exit {r.returncode}):\n{r.stderr}")
        conf = effective_config(binary, d + "/etc/cepheus/cepheus.yaml")
        unit = unit_settings(d + "/usr/lib/systemd/system/cepheus.service")
        pre = unit.get("ExecStartPre", [""])[0].split()
        start = unit.get("ExecStart", [""])[0].split()
        confdir = "/etc/" + unit.get("ConfigurationDirectory", ["?"])[0]
        statedir = "/var/lib/" + unit.get("StateDirectory", ["?"])[0]
        if pre[:2] != ["/usr/bin/cepheus", "check"] or "--config" not in pre:
            failures.append(f"ExecStartPre is not `/usr/bin/cepheus check RULES --config FILE`: {pre}")
        elif pre[2] != conf.get("rules.path"):
            failures.append(f"ExecStartPre checks {pre[2]} but the config runs rules.path {conf.get('rules.path')}")
        if start[:4] != ["/usr/bin/cepheus", "run", "--config", "/etc/cepheus/cepheus.yaml"]:
            failures.append(f"ExecStart is not `/usr/bin/cepheus run --config /etc/cepheus/cepheus.yaml`: {start}")
        if "--config" in pre and pre[pre.index("--config") + 1] != start[-1]:
            failures.append("ExecStartPre and ExecStart read different configs")
        if not start[-1].startswith(confdir + "/") or not os.path.exists(d + start[-1]):
            failures.append(f"the config {start[-1]} is not installed in ConfigurationDirectory {confdir}")
        if conf.get("state.directory") != statedir:
            failures.append(f"state.directory is {conf.get('state.directory')}, the unit's StateDirectory is {statedir}")
        if not conf.get("rules.path", "").startswith(confdir + "/"):
            failures.append(f"rules.path {conf.get('rules.path')} is outside {confdir}")

        # 3. An upgrade keeps the operator's files.
        with open(d + "/etc/cepheus/cepheus.yaml", "a") as f:
            f.write("# edited by the operator\n")
        edited = open(d + "/etc/cepheus/cepheus.yaml").read()
        os.unlink(f"{d}/etc/cepheus/rules/{rules[0]}")
        os.unlink(d + "/usr/share/cepheus/cepheus.yaml")
        out = install(cmake, build, d, "/usr")
        if open(d + "/etc/cepheus/cepheus.yaml").read() != edited:
            failures.append("an upgrade overwrote the operator's /etc/cepheus/cepheus.yaml")
        if os.path.exists(f"{d}/etc/cepheus/rules/{rules[0]}"):
            failures.append(f"an upgrade put back {rules[0]}, which the operator had removed")
        if not os.path.exists(d + "/usr/share/cepheus/cepheus.yaml"):
            failures.append("an upgrade did not refresh /usr/share/cepheus/cepheus.yaml")
        if "Kept: /etc/cepheus/cepheus.yaml" not in out:
            failures.append(f"an upgrade does not say it kept the config:\n{out}")

        # 4. Another prefix: the unit follows the binary; the config stays in /etc.
        l = os.path.join(tmp, "usr-local-prefix")
        install(cmake, build, l, "/usr/local")
        local_unit = unit_settings(l + "/usr/local/lib/systemd/system/cepheus.service")
        if not local_unit.get("ExecStart", [""])[0].startswith("/usr/local/bin/cepheus run"):
            failures.append(f"--prefix /usr/local: ExecStart={local_unit.get('ExecStart')}")
        for p in ("/usr/local/bin/cepheus", "/etc/cepheus/cepheus.yaml", f"/etc/cepheus/rules/{rules[0]}"):
            if not os.path.exists(l + p):
                failures.append(f"--prefix /usr/local: {p} not installed")
    return report(failures)


def report(failures):
    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
