"""Helpers shared by the Python tests and benchmarks (integration/, deploy/,
kafka/, bench/): a free port on the loopback, a scrape of /metrics, and the
settings of a systemd unit file.

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from testlib import free_port, scrape, samples
"""
import re
import socket
import urllib.request


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def scrape(port, path="/metrics", timeout=5):
    """The text at http://127.0.0.1:PORT/PATH, or "" when nothing answers."""
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout).read().decode()
    except OSError:
        return ""


def samples(text):
    """{'name{labels}': value} for every cepheus_ sample of a scrape."""
    values = {}
    for line in text.splitlines():
        if line.startswith("cepheus_") and " " in line:
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def unit_settings(path):
    """{'Key': [values, in order]} of a systemd unit file's Key=value lines."""
    out = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"^([A-Za-z]+)=(.*)$", line.strip())
            if m:
                out.setdefault(m.group(1), []).append(m.group(2))
    return out
