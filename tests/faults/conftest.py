"""The whole product inside the test bed (tests/netbed), for the fault suite.

- the portal (gunicorn, the box's config) in the bed's portal namespace, on 10.213.0.1;
- a receiver agent (TLS on) in the receiver namespace, serving grants on its WAN address;
- per test a fresh sender container whose agent (and the `rclone rcd` it starts) runs in
  the sender namespace.

The test process stays in the host namespace. It reaches the portal through a small
relay of its own: a listener on 127.0.0.1 whose every connection is forwarded from a
socket opened inside the portal namespace (setns on a short-lived thread), so nothing
is routed anywhere and the bed stays sealed.

Each case appends a measurement row to `<session temp dir>/fault-recovery.json`;
the terminal summary prints the table."""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
import requests

from portal.box.processes import stop_group
from tests.e2e.procs import Person, sha256, wait_for, write_random
from tests.netbed.plugin import netbed, pytest_sessionfinish, start_bed  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MiB = 1024 * 1024
PORTAL_PORT = 8000
RATE_MBIT = 80
BIG_FILE_SIZE = 100 * MiB
SMALL_FILES = 200

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _enter_netns(name: str) -> None:
    """Move the calling thread (only) into network namespace `name`."""
    with open(f"/run/netns/{name}") as handle:
        if _libc.setns(handle.fileno(), _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))


class Relay:
    """127.0.0.1:<port> in this namespace -> (host, port) inside namespace `netns`."""

    def __init__(self, netns: str, host: str, port: int):
        self.netns, self.target = netns, (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._closed = False
        self._socks: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True, name="fault-relay").start()

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


class BedPortal:
    """The portal server inside the bed's portal namespace."""

    def __init__(self, bed, state_dir: Path):
        self.bed, self.state_dir = bed, state_dir
        address = bed.address("portal", seen_from="sender")
        self.agent_url = f"http://{address}:{PORTAL_PORT}"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "DTN_STATE_DIR": str(state_dir),
            "DATABASE_URL": f"sqlite:///{state_dir / 'portal.sqlite3'}",
            "DTN_BIND": f"0.0.0.0:{PORTAL_PORT}",
            "DTN_ALLOWED_HOSTS": f"127.0.0.1,localhost,{address}",
            "DTN_HEARTBEAT_SECONDS": "2",
        }
        self.log_path = state_dir / "server.log"
        self.process: subprocess.Popen | None = None
        subprocess.run([sys.executable, str(REPO / "manage.py"), "migrate", "--noinput"], env=self.env, cwd=REPO,
                       check=True, capture_output=True, timeout=120)
        self.relay = Relay(bed.netns("portal"), address, PORTAL_PORT)
        self.url = f"http://127.0.0.1:{self.relay.port}"

    def start(self, timeout: float = 40) -> "BedPortal":
        with open(self.log_path, "ab") as log:
            self.process = self.bed.popen("portal", [str(BIN / "gunicorn"), "-c", str(REPO / "portal" / "gunicorn.conf.py")],
                                          env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)

        def healthy():
            if self.process.poll() is not None:
                raise RuntimeError(f"portal exited:\n{self.log()[-3000:]}")
            try:
                return requests.get(f"{self.url}/healthz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(healthy, timeout, "the portal in the bed to answer", 0.2)
        return self

    def stop(self) -> None:
        stop_group(self.process, 15)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class BedAgent:
    """`python -m agent` inside a bed namespace, token in its 0600 secrets file."""

    def __init__(self, bed, role: str, portal_url: str, token: str, state_dir: Path, log_dir: Path, **env: str):
        self.bed, self.role = bed, role
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.state_dir / "secrets.env", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"DTN_AGENT_TOKEN={token}\n")
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "DTN_PORTAL_URL": portal_url,
            "DTN_STATE_DIR": str(self.state_dir),
            "DTN_PROGRESS_SECONDS": "0.5",
            **env,
        }
        self.log_path = Path(log_dir) / f"agent-{self.state_dir.name}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> "BedAgent":
        with open(self.log_path, "ab") as log:
            self.process = self.bed.python(self.role, ["-m", "agent"], env=self.env, stdout=log,
                                           stderr=subprocess.STDOUT)
        return self

    @property
    def pid(self) -> int:
        return self.process.pid

    def descendants(self) -> list[tuple[int, str]]:
        """(pid, command line) of every process below the agent."""
        parents = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                parents[int(entry.name)] = (int(fields[1]), cmd)
        found, frontier = [], {self.pid}
        while frontier:
            children = {pid for pid, (ppid, _) in parents.items() if ppid in frontier}
            found += [(pid, parents[pid][1]) for pid in children]
            frontier = children
        return found

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        stop_group(self.process, 20)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def make_dataset(send_dir: Path, big: int = BIG_FILE_SIZE, small: int = SMALL_FILES) -> dict[str, str]:
    """big.bin (100 MiB), small/ (200 files of 2-21 KiB), medium/ (10 x 4.5 MiB, the lossy case's data)."""
    write_random(send_dir / "big.bin", big)
    for index in range(10):
        write_random(send_dir / "medium" / f"m{index:02d}.bin", 9 * MiB // 2)
    for index in range(small):
        folder = send_dir / "small" / f"d{index % 8}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{index:04d}.dat").write_bytes(os.urandom(2048 + index * 97))
    return {p.relative_to(send_dir).as_posix(): sha256(p) for p in send_dir.rglob("*") if p.is_file()}


def subset(expected: dict[str, str], sources) -> dict[str, str]:
    return {p: h for p, h in expected.items() if any(p == s or p.startswith(s + "/") for s in sources)}


class World:
    """Bed + portal + Bob's receiver + Alice; a fresh sender per test."""

    def __init__(self, bed, scratch: Path):
        self.bed, self.scratch = bed, scratch
        self.logs = scratch / "logs"
        self.logs.mkdir()
        self.portal = BedPortal(bed, self._dir("portal")).start()
        self.agents: list[BedAgent] = []
        self.alice = Person(self.portal.url, "alice-faults")
        self.bob = Person(self.portal.url, "bob-faults")
        self.send_dir = self._dir("send")
        self.everything = make_dataset(self.send_dir)
        self.expected = subset(self.everything, ("big.bin", "small"))
        self.dataset_bytes = self.size(self.expected)
        self.receiver, self.receive_dir, self.receiver_agent = self.add_receiver("main", self._dir("received"), 9443)
        self._senders = 0

    def size(self, files) -> int:
        return sum((self.send_dir / p).stat().st_size for p in files)

    def _dir(self, name: str) -> Path:
        path = self.scratch / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def add_receiver(self, name: str, receive_dir: Path, first_port: int):
        box = self.bob.register(f"bob-{name}", role="receiver")
        wan = self.bed.address("receiver", seen_from="sender")
        agent = BedAgent(self.bed, "receiver", self.portal.agent_url, box["agent_token"], self._dir(f"bob-{name}-state"),
                         self.logs, DTN_RECEIVE_DIR=str(receive_dir), DTN_RECEIVER_HOST=wan,
                         DTN_RECEIVER_BIND=wan, DTN_RECEIVER_PORT=str(first_port),
                         DTN_RECEIVER_TLS="true").start()
        self.agents.append(agent)
        grant = self.bob.call("POST", "/api/v1/grants", 201, json={"grantee": self.alice.username,
                                                                     "receiver": box["container_id"]})

        def online():
            row = self.bob.call("GET", f"/api/v1/containers/{box['container_id']}")
            served = any(g["grant_id"] == grant["grant_id"] and g["served"] == "ok"
                         for g in self.bob.call("GET", "/api/v1/grants")["given"])
            return row["online"] and row["endpoint"].startswith("https://") and served

        wait_for(online, 60, f"receiver {name} to come online with TLS", 0.3)
        return box, receive_dir, agent

    def grant(self, receiver_box) -> dict:
        for row in self.bob.call("GET", "/api/v1/grants")["given"]:
            if row.get("receiver") == receiver_box["container_id"] or row.get("receiver_id") == receiver_box["container_id"]:
                return row
        rows = self.bob.call("GET", "/api/v1/grants")["given"]
        raise AssertionError(f"no grant for {receiver_box['container_id']}: {rows}")

    def new_sender(self, count: int = 1, **env):
        self._senders += 1
        box = self.alice.register(f"alice-sender-{self._senders}", role="sender")
        agents = []
        for index in range(count):
            agent = BedAgent(self.bed, "sender", self.portal.agent_url, box["agent_token"],
                             self._dir(f"alice-{self._senders}-state-{index}"), self.logs,
                             DTN_SEND_DIR=str(self.send_dir), **env)
            self.agents.append(agent)
            agents.append(agent.start())
        return box, agents

    def send(self, sender_box, receiver_box=None, sources=("big.bin", "small"), prefix=None,
             **options) -> tuple[str, str]:
        prefix = prefix or f"t-{secrets.token_hex(4)}"
        transfer_id = self.alice.call("POST", "/api/v1/transfers", 201, json={
            "sender": sender_box["container_id"], "receiver": (receiver_box or self.receiver)["container_id"],
            "sources": list(sources), "prefix": prefix, "label": prefix, **options})["transfer_id"]
        return transfer_id, prefix

    def landed(self, bucket: str, prefix: str, receive_dir: Path | None = None) -> dict[str, str]:
        root = (receive_dir or self.receive_dir) / bucket / prefix
        return {p.relative_to(root).as_posix(): sha256(p) for p in root.rglob("*") if p.is_file()}

    def dump_logs(self) -> None:
        for agent in self.agents:
            text = agent.log()
            if text:
                print(f"--- {agent.log_path.name} (last lines) ---")
                lines = [line for line in text.splitlines() if "progress report for" not in line
                         and "heartbeat failed" not in line]
                print("\n".join(lines[-60:]))
        print("--- portal (last lines) ---")
        print("\n".join(self.portal.log().splitlines()[-30:]))

    def close(self) -> None:
        for agent in reversed(self.agents):
            agent.stop()
        self.portal.stop()
        self.portal.relay.close()


def world_in_bed(make, prefix: str, **link):
    """A bed with a world made in it (`make(bed, scratch)`), and everything gone afterwards."""
    bed = start_bed(cc="cubic", **link)
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    made = None
    try:
        made = make(bed, scratch)
        yield made
    finally:
        if made is not None:
            made.close()
        bed.close()
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="module")
def world():
    yield from world_in_bed(World, "dtn-faults-", rate_mbit=RATE_MBIT, rtt_ms=2, loss_pct=0)


@pytest.fixture
def fresh_link(world):
    world.bed.link.up()
    world.bed.link.set(rate_mbit=RATE_MBIT, rtt_ms=2, loss_pct=0)
    world.bed.set_congestion_control("cubic")
    yield world
    world.bed.link.up()
    world.bed.link.set(rate_mbit=RATE_MBIT, rtt_ms=2, loss_pct=0)


# --- measurement rows --------------------------------------------------------

def _results_path(config) -> Path:
    base = Path(config._tmp_path_factory.getbasetemp()) if hasattr(config, "_tmp_path_factory") else Path(tempfile.gettempdir())
    return base / "fault-recovery.json"


@pytest.fixture
def record_row(request):
    path = _results_path(request.config)

    def record(**row):
        rows = json.loads(path.read_text()) if path.exists() else []
        rows.append({"case": request.node.name, **row})
        path.write_text(json.dumps(rows, indent=1))
        print(f"fault row: {json.dumps(rows[-1])}")

    return record


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    path = _results_path(config)
    if not path.exists():
        return
    rows = json.loads(path.read_text())
    terminalreporter.section(f"fault suite: recovery ({path})")
    terminalreporter.write_line(f"{'case':58} {'state':10} {'total s':>8} {'recover s':>9} {'retries':>7} "
                                f"{'attempts':>8} {'resent MiB':>10}  notes")
    for row in rows:
        terminalreporter.write_line(
            f"{row['case'][:58]:58} {row.get('state', ''):10} {row.get('total_s', 0):8.1f} "
            f"{row.get('recover_s') if row.get('recover_s') is not None else '-':>9} {row.get('retries', 0):7} "
            f"{row.get('attempts', 0):8} {row.get('resent_mib', 0):10.1f}  "
            + ", ".join(f"{k}={v}" for k, v in row.items() if k not in _TABLE_KEYS))


_TABLE_KEYS = {"case", "state", "total_s", "recover_s", "retries", "attempts", "resent_mib"}
