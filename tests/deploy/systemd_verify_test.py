#!/usr/bin/env python3
"""The shipped unit passes `systemd-analyze verify`, and its user exists once
the shipped sysusers.d file is applied.

    systemd_verify_test.py UNIT SYSUSERS PATH/TO/cepheus

`verify` checks that every Exec*= command exists, so it runs with --root on a
scratch tree holding the unit, the built binary as /usr/bin/cepheus, /bin/kill
(ExecReload) and a copy of the host's unit directory (for the targets the unit
and its default dependencies name). It exits 0 on many mistakes (an unknown
key or a bad value is "ignoring" on stderr), so any output is a failure too.
`systemd-sysusers --root` then creates the user on the scratch tree, and
User=/Group= must name what it created.
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import unit_settings  # noqa: E402


def main():
    unit, sysusers, binary = (os.path.abspath(a) for a in sys.argv[1:4])
    failures = []
    with tempfile.TemporaryDirectory() as root:
        for d in ("usr/bin", "usr/lib/systemd", "etc"):
            os.makedirs(os.path.join(root, d))
        for link in ("bin", "lib", "sbin"):   # merged /usr, as on Debian 12
            os.symlink("usr/" + link, os.path.join(root, link))
        shutil.copytree(os.path.realpath("/lib/systemd/system"), os.path.join(root, "usr/lib/systemd/system"),
                        symlinks=True)
        shutil.copy(os.path.realpath("/bin/kill"), os.path.join(root, "usr/bin/kill"))
        shutil.copy(binary, os.path.join(root, "usr/bin/cepheus"))
        target = os.path.join(root, "usr/lib/systemd/system/cepheus.service")
        shutil.copy(unit, target)
        r = subprocess.run(["systemd-analyze", "verify", f"--root={root}", target], capture_output=True, text=True)
        print(f"systemd-analyze verify: exit {r.returncode}")
        if r.returncode != 0 or r.stdout.strip() or r.stderr.strip():
            failures.append(f"systemd-analyze verify (exit {r.returncode}):\n{r.stdout}{r.stderr}")

        r = subprocess.run(["systemd-sysusers", f"--root={root}", sysusers], capture_output=True, text=True)
        print(f"systemd-sysusers: exit {r.returncode}: {r.stdout}{r.stderr}".strip())
        if r.returncode != 0:
            failures.append(f"systemd-sysusers refused {sysusers}:\n{r.stdout}{r.stderr}")
        users = {l.split(":")[0]: l for l in open(os.path.join(root, "etc/passwd")).read().splitlines()} \
            if os.path.exists(os.path.join(root, "etc/passwd")) else {}
        groups = {l.split(":")[0] for l in open(os.path.join(root, "etc/group")).read().splitlines()} \
            if os.path.exists(os.path.join(root, "etc/group")) else set()
        settings = unit_settings(unit)
        for user in settings.get("User", []):
            if user not in users:
                failures.append(f"User={user} but the sysusers file creates {sorted(users)}")
            elif not users[user].endswith(":/usr/sbin/nologin"):
                failures.append(f"user {user} can log in: {users[user]}")
        for group in settings.get("Group", []):
            if group not in groups:
                failures.append(f"Group={group} but the sysusers file creates {sorted(groups)}")
        if not settings.get("User") and settings.get("DynamicUser") != ["yes"]:
            failures.append("the unit names no dedicated user")
    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
