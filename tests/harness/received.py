"""What a receiver really received: the bytes its sockets on one port took in, counted by the kernel.

Issue 20's tests and bench/resume_designs measure a restart's cost at the receiver, never with the
product's own counters. `Received(port)` sums tcp_info's `bytes_received` (TLS framing and HTTP included)
over every connection whose local port is `port`:

- live connections are polled with `ss -ti` every 20 ms;
- each connection's final count, as it closes, comes from `ss -E` (socket-destroy events), so a
  connection that opens and closes between two polls is counted in full;
- connections are told apart by the kernel's socket cookie (`ss -e`'s `sk:`), so a server restarted on the
  same port, whose new connections may reuse an old client address:port, adds to the sum instead of
  hiding behind the old connection's larger count. The sum only grows; it survives a client's death and a
  restart of the server.

Needs root (`ss -E` reads the kernel's sock_diag broadcasts) and `ss` from iproute2. `netns` names a
network namespace (`ip netns exec`: the test bed's receiver, tests/netbed) for a server that runs in one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time

_BYTES = re.compile(r"\bbytes_received:(\d+)")
_COOKIE = re.compile(r"^sk:([0-9a-f]+)$")


def available() -> str | None:
    """None when the count can be taken here; else why not (for a skip's reason)."""
    if os.geteuid() != 0:
        return "counting a receiver's socket bytes needs root (ss -E)"
    if shutil.which("ss") is None:
        return "counting a receiver's socket bytes needs ss (iproute2)"
    return None


class Received:
    """Bytes received on `port` since this object was made (connections already open count in full)."""

    INTERVAL = 0.02

    def __init__(self, port: int, netns: str | None = None):
        self.port = port
        self._prefix = ["ip", "netns", "exec", netns] if netns else []
        self.seen: dict[str, int] = {}
        self.history: list[tuple[float, int]] = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        # A filter expression makes ss -E print nothing (iproute2 6.1): every destroyed TCP socket of the
        # namespace comes, and only this port is kept. stdbuf: ss's stdout is a pipe, so without it a
        # destroyed socket's line could wait in ss's buffer until many more have come.
        argv = [*self._prefix, "ss", "-E", "-tineH"]
        if shutil.which("stdbuf"):
            argv = ["stdbuf", "-oL", *argv]
        self.events = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._closed_thread = threading.Thread(target=self._closed, daemon=True, name="received-closed")
        self._closed_thread.start()
        time.sleep(0.1)  # ss -E subscribes to the events before the first connection we count can close
        self.poll()
        self._thread = threading.Thread(target=self._run, daemon=True, name="received")
        self._thread.start()

    def _connection(self, header: str) -> str | None:
        """The connection's name when the header line is one of this port's server sockets: its cookie
        (unique while the kernel runs), else its client's address:port."""
        fields = header.split()
        addresses = [i for i, field in enumerate(fields)
                     if ":" in field and not field.startswith(("ino:", "sk:", "cgroup:", "uid:"))]
        if len(addresses) < 2:
            return None
        local, peer = fields[addresses[0]], fields[addresses[1]]
        if not local.endswith(f":{self.port}"):
            return None
        for field in fields:
            found = _COOKIE.match(field)
            if found:
                return f"sk:{found.group(1)}"
        return peer

    def _note(self, lines) -> None:
        name = None
        for line in lines:
            if not line[:1].isspace():
                name = self._connection(line)
                continue
            found = _BYTES.search(line)
            if found and name:
                with self.lock:
                    self.seen[name] = max(self.seen.get(name, 0), int(found.group(1)))

    def _closed(self):
        pending = []
        for line in self.events.stdout:
            pending.append(line)
            if line[:1].isspace():
                self._note(pending)
                pending = []

    def poll(self) -> int:
        """The count now (and a point of its history)."""
        text = subprocess.run([*self._prefix, "ss", "-tineH", "state", "established", f"( sport = :{self.port} )"],
                              capture_output=True, text=True, timeout=5).stdout
        self._note(text.splitlines())
        with self.lock:
            total = sum(self.seen.values())
            self.history.append((time.time(), total))
            return total

    def _run(self):
        while not self._stop.wait(self.INTERVAL):
            try:
                self.poll()
            except (subprocess.SubprocessError, OSError):
                pass

    def at(self, moment: float) -> int:
        """The first count after the moment: an upper bound, the safe side for how little a restart re-sends."""
        with self.lock:
            return min((value for at, value in self.history if at >= moment), default=self.history[-1][1])

    def settled(self, quiet: float = 1.0, timeout: float = 30.0) -> int:
        """The count once it has not grown for `quiet` seconds (what was in flight has arrived, or died)."""
        deadline = time.monotonic() + timeout
        last, since = self.poll(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = self.poll()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return now
        return last

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.events.terminate()
        try:
            self.events.wait(5)
        except subprocess.TimeoutExpired:
            self.events.kill()
            self.events.wait(5)
