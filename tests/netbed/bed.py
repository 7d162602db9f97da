"""Three hosts in network namespaces and a WAN between two of them.

    with Bed(cc="cubic", rate_mbit=200, rtt_ms=50, loss_pct=0) as bed:
        server = bed.python("receiver", ["-m", "tests.netbed.probe", "serve"], stdout=PIPE)
        bed.run("sender", ["ping", "-c1", bed.address("receiver", seen_from="sender")])
        bed.link.set(rate_mbit=50)
        bed.link.down(); bed.link.up()

See docs/testbed.md for the topology and the reasons behind it.
"""

from __future__ import annotations

import atexit
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
import time
from pathlib import Path

from tests.netbed import host

REPO = Path(__file__).resolve().parents[2]
ROLES = ("portal", "sender", "receiver")

# Addresses exist only inside the bed's namespaces; nothing is routed out of them.
PORTAL_IP = "10.213.0.1"  # the portal's service address, the same from both sites
LAN = {  # (portal side, site side) of each site's plain link to the portal
    "sender": ("10.213.1.1", "10.213.1.2"),
    "receiver": ("10.213.2.1", "10.213.2.2"),
}
WAN = {"sender": "10.213.9.1", "receiver": "10.213.9.2"}  # the TUN ends of the WAN
WAN_DEV = "wan0"
LAN_DEV = "lan0"
TUN_TXQUEUELEN = 10000

_live: list["Bed"] = []
_live_lock = threading.RLock()
_created_run_ids: list[str] = []
_saved_handlers: dict[int, object] = {}
_cc_before: list[str] | None = None


def created_run_ids() -> list[str]:
    """Run ids of every bed this process created (for the end-of-session check)."""
    return list(_created_run_ids)


def allowed_cc_before_first_bed() -> list[str] | None:
    """The host's congestion-control allow list before this process's first bed."""
    return list(_cc_before) if _cc_before is not None else None


def _close_all() -> None:
    with _live_lock:
        beds = list(_live)
    for bed in reversed(beds):
        bed.close()


atexit.register(_close_all)


def _interrupt(signum, frame):
    # Unwind like Ctrl-C: context managers and pytest's fixture teardown run.
    raise KeyboardInterrupt(f"signal {signum}")


def _install_signal_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signum not in _saved_handlers and signal.getsignal(signum) == signal.SIG_DFL:
            _saved_handlers[signum] = signal.signal(signum, _interrupt)


def _restore_signal_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for signum, handler in list(_saved_handlers.items()):
        if signal.getsignal(signum) is _interrupt:
            signal.signal(signum, handler)
        del _saved_handlers[signum]


class LinkError(RuntimeError):
    pass


class Link:
    """The WAN between the sender and the receiver, changeable while traffic flows.

    Both directions get the same parameters: `rate_mbit` (bottleneck; 0/None =
    none), `delay_ms` (one-way; or give `rtt_ms`, split evenly), `loss_pct`
    (random drop per packet and direction) and `queue_ms` (bottleneck buffer,
    in transmission time at the current rate)."""

    def __init__(self, control_path: Path, ip):
        self.control_path = control_path
        self._ip = ip
        self._ifdown = False

    def _call(self, request: dict) -> dict:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.control_path))
            sock.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        reply = json.loads(data or b"{}")
        if not reply.get("ok"):
            raise LinkError(reply.get("error", "no reply from the forwarder"))
        return reply

    def set(self, rate_mbit: float | None = ..., delay_ms: float | None = ..., loss_pct: float | None = ...,
            queue_ms: float | None = ..., rtt_ms: float | None = ...) -> dict:
        """Change what is given, keep the rest; returns the parameters in force."""
        changes = {}
        if rtt_ms is not ...:
            if delay_ms is not ...:
                raise TypeError("give delay_ms (one-way) or rtt_ms, not both")
            delay_ms = (rtt_ms or 0) / 2
        for key, value in (("rate_mbit", rate_mbit), ("delay_ms", delay_ms), ("loss_pct", loss_pct),
                           ("queue_ms", queue_ms)):
            if value is not ...:
                changes[key] = value
        return self._call({"set": changes})["params"]

    def down(self, how: str = "drop") -> None:
        """Cut the WAN. how="drop": every packet in flight and after is lost
        silently, as when a cable somewhere on the path is cut (TCP sees only
        timeouts). how="ifdown": the sites' own WAN interfaces go down as well,
        so their stacks answer at once with 'network unreachable'."""
        if how not in ("drop", "ifdown"):
            raise ValueError("how is 'drop' or 'ifdown'")
        self._call({"set": {"down": True}})
        if how == "ifdown":
            for role in ("sender", "receiver"):
                self._ip(role, "link", "set", WAN_DEV, "down")
            self._ifdown = True

    def up(self) -> None:
        if self._ifdown:
            for role in ("sender", "receiver"):
                self._ip(role, "link", "set", WAN_DEV, "up")
            self._ifdown = False
        self._call({"set": {"down": False}})

    @property
    def params(self) -> dict:
        return self._call({})["params"]

    def stats(self, reset: bool = False) -> dict:
        """Per-direction counters ("a_to_b" is sender to receiver): packets and
        bytes in/out, drops by cause (loss, queue, down, write), queued now."""
        return self._call({"reset_stats": True} if reset else {"stats": True})["stats"]


class Bed:
    """Namespaces dtn-<run>-portal, -sender and -receiver; the portal reaches
    both sites over plain veth links, the sites reach each other only through
    the WAN forwarder. A context manager; `close()` is idempotent and also runs
    at exit and on SIGTERM/SIGHUP.

    `cc` (required: every test names its congestion control) becomes the
    default TCP congestion control of all three namespaces."""

    def __init__(self, *, cc: str, rate_mbit: float | None = None, rtt_ms: float = 0.0,
                 delay_ms: float | None = None, loss_pct: float = 0.0, queue_ms: float = 50.0,
                 seed: int | None = None):
        self.cc = cc
        one_way = delay_ms if delay_ms is not None else rtt_ms / 2
        self._initial = {"rate_mbit": rate_mbit or 0, "delay_ms": one_way, "loss_pct": loss_pct,
                         "queue_ms": queue_ms, "seed": seed}
        self.run_id = f"{os.getpid()}x{secrets.token_hex(3)}"
        self.names = {role: f"dtn-{self.run_id}-{role}" for role in ROLES}
        self.tmpdir: Path | None = None
        self.link: Link | None = None
        self.forwarder: subprocess.Popen | None = None
        self._procs: list[subprocess.Popen] = []
        self._cc_added: list[str] = []
        self._created: list[str] = []
        self._closed = False
        self._started = False

    # --- life cycle -------------------------------------------------------------

    def __enter__(self) -> "Bed":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> "Bed":
        if self._started:
            raise RuntimeError("a Bed starts once")
        self._started = True
        reason = host.unavailable_reason()
        if reason:
            raise host.BedUnavailable(reason)
        host.ensure_tools()
        host.sweep_stale()
        global _cc_before
        with _live_lock:
            if _cc_before is None:
                _cc_before = host.allowed_congestion_control()
            _live.append(self)
            _created_run_ids.append(self.run_id)
            _install_signal_handlers()
        try:
            self.tmpdir = Path(tempfile.mkdtemp(prefix=f"{host.TMP_PREFIX}{self.run_id}-"))
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def _build(self) -> None:
        for role in ROLES:
            self._sh("ip", "netns", "add", self.names[role])
            self._created.append(self.names[role])
            self.ip(role, "link", "set", "lo", "up")
        portal = self.names["portal"]
        self.ip("portal", "addr", "add", f"{PORTAL_IP}/32", "dev", "lo")
        for site in ("sender", "receiver"):
            portal_side, site_side = LAN[site]
            dev = f"to-{site}"
            self._sh("ip", "link", "add", dev, "netns", portal, "type", "veth",
                     "peer", "name", LAN_DEV, "netns", self.names[site])
            self.ip("portal", "addr", "add", f"{portal_side}/24", "dev", dev)
            self.ip("portal", "link", "set", dev, "up")
            self.ip(site, "addr", "add", f"{site_side}/24", "dev", LAN_DEV)
            self.ip(site, "link", "set", LAN_DEV, "up")
            self.ip(site, "route", "add", f"{PORTAL_IP}/32", "via", portal_side, "dev", LAN_DEV)
            # The WAN end: a persistent TUN device the forwarder attaches to.
            other = "receiver" if site == "sender" else "sender"
            self.ip(site, "tuntap", "add", "dev", WAN_DEV, "mode", "tun")
            self.ip(site, "link", "set", WAN_DEV, "txqueuelen", str(TUN_TXQUEUELEN))
            self.ip(site, "addr", "add", WAN[site], "peer", f"{WAN[other]}/32", "dev", WAN_DEV)
            self.ip(site, "link", "set", WAN_DEV, "up")
        # The portal host must not route between the sites (new namespaces start with forwarding off).
        self._write_sysctl("portal", "net/ipv4/ip_forward", "0")
        self._start_forwarder()
        self.set_congestion_control(self.cc)

    def _start_forwarder(self) -> None:
        control = self.tmpdir / "wan.sock"
        initial = self._initial
        argv = [sys.executable, "-m", "tests.netbed.forwarder",
                "--a", f"{self.names['sender']}:{WAN_DEV}", "--b", f"{self.names['receiver']}:{WAN_DEV}",
                "--control", str(control), "--rate-mbit", str(initial["rate_mbit"]),
                "--delay-ms", str(initial["delay_ms"]), "--loss-pct", str(initial["loss_pct"]),
                "--queue-ms", str(initial["queue_ms"])]
        if initial["seed"] is not None:
            argv += ["--seed", str(initial["seed"])]
        log = open(self.tmpdir / "forwarder.log", "wb")
        try:
            self.forwarder = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=log,
                                              stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()
        ready = self._read_line(self.forwarder.stdout, timeout=15)
        if ready.strip() != b"ready":
            self.forwarder.kill()
            self.forwarder.wait()
            raise RuntimeError(f"the WAN forwarder did not start: "
                               f"{(self.tmpdir / 'forwarder.log').read_text(errors='replace')[-2000:]}")
        self.link = Link(control, self.ip)

    @staticmethod
    def _read_line(stream, timeout: float) -> bytes:
        result: list[bytes] = []
        reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        return result[0] if result else b""

    def close(self) -> None:
        """Kill every process of the bed, stop the forwarder, delete the
        namespaces and the temp dir, give back the congestion control."""
        if self._closed:
            return
        self._closed = True
        errors = []

        def attempt(step, *args):
            try:
                step(*args)
            except Exception as error:  # go on: the rest must still be cleaned
                errors.append(f"{getattr(step, '__name__', step)}: {error}")

        for proc in self._procs:
            attempt(self._signal_group, proc, signal.SIGTERM)
        deadline = time.monotonic() + 3
        for proc in self._procs:
            try:
                proc.wait(max(0.01, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                attempt(self._signal_group, proc, signal.SIGKILL)
        for proc in self._procs:
            attempt(proc.wait, 5)
            attempt(self._close_pipes, proc)
        for name in self._created:
            attempt(host.kill_pids, host.netns_pids(name))
        if self.forwarder is not None:
            attempt(self._signal_group, self.forwarder, signal.SIGTERM)
            try:
                self.forwarder.wait(3)
            except subprocess.TimeoutExpired:
                attempt(self._signal_group, self.forwarder, signal.SIGKILL)
                attempt(self.forwarder.wait, 5)
            attempt(self._close_pipes, self.forwarder)
        for name in self._created:
            attempt(self._sh, "ip", "netns", "delete", name)
        for name in self._cc_added:
            attempt(host.release_congestion_control, name)
        if self.tmpdir is not None:
            attempt(shutil.rmtree, self.tmpdir)
        with _live_lock:
            if self in _live:
                _live.remove(self)
            if not _live:
                _restore_signal_handlers()
        if errors:
            print(f"netbed {self.run_id}: teardown problems: {'; '.join(errors)}", file=sys.stderr)

    @staticmethod
    def _signal_group(proc: subprocess.Popen, signum: int) -> None:
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass

    @staticmethod
    def _close_pipes(proc: subprocess.Popen) -> None:
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    # --- running things -----------------------------------------------------------

    def netns(self, role: str) -> str:
        """The namespace's name for a role ("portal", "sender", "receiver") or a full name."""
        if role in self.names:
            return self.names[role]
        if role in self.names.values():
            return role
        raise ValueError(f"no namespace {role!r} in this bed")

    def address(self, of: str, seen_from: str) -> str:
        """The address at which host `of` is reached from host `seen_from`."""
        if of == "portal":
            return PORTAL_IP
        if seen_from == "portal":
            return LAN[of][1]
        return WAN[of]

    def popen(self, ns: str, argv: list[str], **kwargs) -> subprocess.Popen:
        """Start `argv` inside namespace `ns` (`ip netns exec`); killed, with its
        process group and everything else in the namespace, at teardown."""
        if self._closed or not self._started:
            raise RuntimeError("the bed is not running")
        kwargs.setdefault("start_new_session", True)
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        proc = subprocess.Popen(["ip", "netns", "exec", self.netns(ns), *argv], **kwargs)
        self._procs.append(proc)
        return proc

    def run(self, ns: str, argv: list[str], *, check: bool = True, timeout: float | None = 60,
            input=None, **kwargs) -> subprocess.CompletedProcess:
        """Run `argv` inside `ns` to completion (stdout/stderr captured unless
        told otherwise); killed if it outlives `timeout` or the caller is interrupted."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        if input is not None:
            kwargs["stdin"] = subprocess.PIPE
        proc = self.popen(ns, argv, **kwargs)
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except BaseException:
            self._signal_group(proc, signal.SIGKILL)
            proc.wait()
            raise
        finally:
            self._close_pipes(proc)
        if proc in self._procs:
            self._procs.remove(proc)
        done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        if check:
            done.check_returncode()
        return done

    def python_argv(self, args: list[str]) -> list[str]:
        return [sys.executable, *args]

    def python(self, ns: str, args: list[str], **kwargs) -> subprocess.Popen:
        """Start this venv's Python inside `ns`, from the repository root (so
        `-m tests...`, `-m agent`... import)."""
        kwargs.setdefault("cwd", REPO)
        return self.popen(ns, self.python_argv(args), **kwargs)

    def run_python(self, ns: str, args: list[str], **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("cwd", REPO)
        return self.run(ns, self.python_argv(args), **kwargs)

    def ip(self, role: str, *args: str) -> subprocess.CompletedProcess:
        """`ip -n <namespace> ARGS...`, failing loudly."""
        return self._sh("ip", "-n", self.netns(role), *args)

    @staticmethod
    def _sh(*argv: str) -> subprocess.CompletedProcess:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip() or done.stdout.strip()}")
        return done

    def _write_sysctl(self, role: str, key: str, value: str) -> None:
        self.run(role, ["sh", "-c", f"echo {value} > /proc/sys/{key}"], timeout=10)

    def read_sysctl(self, role: str, key: str) -> str:
        return self.run(role, ["cat", f"/proc/sys/{key}"], text=True, timeout=10).stdout.strip()

    def set_congestion_control(self, name: str, roles: tuple[str, ...] = ROLES) -> None:
        """Make `name` the default TCP congestion control inside the namespaces
        (all by default). A name missing from the host-wide allow list is added
        there first and removed again at teardown."""
        if name not in self._cc_added and host.allow_congestion_control(name):
            self._cc_added.append(name)
            (self.tmpdir / "cc-added").write_text(" ".join(self._cc_added))
        for role in roles:
            self._write_sysctl(role, "net/ipv4/tcp_congestion_control", name)
            got = self.read_sysctl(role, "net/ipv4/tcp_congestion_control")
            if got != name:
                raise RuntimeError(f"{self.netns(role)} kept congestion control {got}, not {name}")
