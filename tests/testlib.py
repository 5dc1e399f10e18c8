"""Helpers shared by the Python tests and benchmarks (integration/, deploy/,
kafka/, bench/): a free port on the loopback, a scrape of /metrics, the
settings of a systemd unit file, and a fake NOTIFY_SOCKET.

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from testlib import free_port, scrape, samples
"""
import os
import re
import socket
import threading
import time
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


def cold_keys_seen(port):
    """With CEPHEUS_STATE_MAX_RESIDENT_KEYS set (the cold-keys variants of the
    broker tests): (ok, what) where ok says the daemon behind `port` let keys
    go from memory and read some back (cepheus_keys_read_back_total > 0).
    (True, "") when the variable is not set."""
    if not os.environ.get("CEPHEUS_STATE_MAX_RESIDENT_KEYS"):
        return True, ""
    s = samples(scrape(port))
    read_back, cold = s.get("cepheus_keys_read_back_total", 0), s.get("cepheus_keys_cold", 0)
    return read_back > 0, f"cold keys: {cold:.0f} in LMDB only, {read_back:.0f} read back"


def unit_settings(path):
    """{'Key': [values, in order]} of a systemd unit file's Key=value lines."""
    out = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"^([A-Za-z]+)=(.*)$", line.strip())
            if m:
                out.setdefault(m.group(1), []).append(m.group(2))
    return out


class FakeSystemd:
    """A NOTIFY_SOCKET for a test: receives on its own thread, so each
    message is stamped (monotonic time, text) when it comes."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.02)
        self.messages = []  # (monotonic time, text)
        self.done = False
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()

    def _receive(self):
        while not self.done:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            self.messages.append((time.monotonic(), data.decode(errors="replace")))

    def stop(self):
        self.done = True
        self.thread.join()

    def wait_for(self, text, after=0, timeout=30):
        """The index of the first message from `after` on that holds `text`, or -1."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i in range(after, len(self.messages)):
                if text in self.messages[i][1]:
                    return i
            time.sleep(0.02)
        return -1

    def ready_after(self, t):
        """When READY=1 first came after monotonic time t, or None."""
        for at, text in list(self.messages):
            if at >= t and "READY=1" in text.split("\n"):
                return at
        return None
