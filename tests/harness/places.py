"""Where a process of the product runs: on this host (`LOCAL`), or in a namespace of the
test bed (`InBed(bed, role)`, tests/netbed). A place starts a process in a session of
its own (a stop reaches its children too), says on which address the others reach a
server there, and lets this test process, which stays in the host's namespace, reach
one (a `Relay` into the bed)."""

from __future__ import annotations

import ctypes
import itertools
import os
import socket
import subprocess
import threading
from pathlib import Path

from portal.box.processes import REPO
from tests.tools.net import free_port

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class Local:
    listen = "127.0.0.1"
    address = "127.0.0.1"
    # Receivers on the loopback answer at once or not at all: no need to wait seconds between tries.
    # And every receiver is on this host, which senders and the portal refuse by default.
    agent_env = {"DTN_RECEIVER_ATTEMPTS": "3", "DTN_RECEIVER_RETRY_SECONDS": "0.5",
                 "DTN_ALLOW_LOCAL_ENDPOINTS": "true"}
    portal_env = {"DTN_ALLOW_LOCAL_ENDPOINTS": "true"}

    def popen(self, argv: list[str], *, env: dict, log: Path, cwd: Path = REPO) -> subprocess.Popen:
        with open(log, "ab") as out:
            return subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)

    def run(self, argv: list[str], *, env: dict, timeout: float, cwd: Path = REPO) -> subprocess.CompletedProcess:
        return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)

    def free_port(self) -> int:
        return free_port()

    def accepts(self, host: str, port: int) -> bool:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            return False

    def expose(self, host: str, port: int) -> tuple[str, int]:
        return host, port

    def close(self) -> None:
        pass


LOCAL = Local()
# The ports handed out in each namespace of a bed, which starts with none in use: a portal there
# listens on 8000.
_bed_ports: dict[str, itertools.count] = {}


class InBed:
    listen = "0.0.0.0"
    # Over the bed's WAN the product keeps its own pacing of receiver retries.
    agent_env: dict = {}

    def __init__(self, bed, role: str):
        self.bed, self.role = bed, role
        self.address = bed.address(role, seen_from="sender" if role != "sender" else "receiver")
        # Asked by name from this host (through the relay) and by address from the sites.
        self.portal_env = {"DTN_ALLOWED_HOSTS": f"127.0.0.1,localhost,{self.address}"}
        self.relays: list[Relay] = []

    def popen(self, argv: list[str], *, env: dict, log: Path, cwd: Path = REPO) -> subprocess.Popen:
        with open(log, "ab") as out:
            return self.bed.popen(self.role, argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)

    def run(self, argv: list[str], *, env: dict, timeout: float, cwd: Path = REPO) -> subprocess.CompletedProcess:
        return self.bed.run(self.role, argv, env=env, cwd=cwd, check=False, timeout=timeout, text=True)

    def free_port(self) -> int:
        return next(_bed_ports.setdefault(self.bed.netns(self.role), itertools.count(8000)))

    def accepts(self, host: str, port: int) -> bool:
        return self.bed.run(self.role, ["bash", "-c", f"exec 3<>/dev/tcp/{host}/{port}"], check=False).returncode == 0

    def expose(self, host: str, port: int) -> tuple[str, int]:
        relay = Relay(self.bed.netns(self.role), host, port)
        self.relays.append(relay)
        return "127.0.0.1", relay.port

    def close(self) -> None:
        for relay in self.relays:
            relay.close()
        self.relays.clear()


def _enter_netns(name: str) -> None:
    """Move the calling thread (only) into network namespace `name`."""
    with open(f"/run/netns/{name}") as handle:
        if _libc.setns(handle.fileno(), _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))


class Relay:
    """127.0.0.1:<port> in this namespace -> (host, port) inside namespace `netns`: every
    connection is forwarded from a socket opened inside it (setns on a short-lived thread),
    so nothing is routed anywhere and the bed stays sealed."""

    def __init__(self, netns: str, host: str, port: int):
        self.netns, self.target = netns, (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._closed = False
        self._socks: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True, name="bed-relay").start()

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket):
        try:
            _enter_netns(self.netns)  # this thread only; it ends with the connection
            upstream = socket.create_connection(self.target, timeout=5)
            upstream.settimeout(None)
        except OSError:
            client.close()
            return
        with self._lock:
            self._socks.update((client, upstream))
        threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
        self._pump(upstream, client)

    def _pump(self, src: socket.socket, dst: socket.socket):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self._closed = True
        self.listener.close()
        with self._lock:
            for sock in self._socks:
                sock.close()
            self._socks.clear()
