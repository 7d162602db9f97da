"""The WAN between the sites: a packet-level forwarder between two TUN devices.

    python -m tests.netbed.forwarder --a NETNS:DEV --b NETNS:DEV --control SOCKET
        [--rate-mbit R] [--delay-ms D] [--loss-pct P] [--queue-ms Q] [--seed S]

Each TUN device is opened inside its own network namespace (setns() into it,
open /dev/net/tun, setns() back; the descriptor keeps working), so the
forwarder itself lives in the caller's namespace and is the only thing joining
the two sites. Every IP packet read from one device is written to the other,
after passing, per direction:

1. the link state: while down, every packet is dropped (and the queues flushed);
2. random loss: each packet is dropped with probability loss_pct/100, here on the
   path, after the sender's TCP stack has let it go, so TCP must detect the
   loss itself (dupacks, SACK, RACK, RTO) as on a real lossy WAN;
3. the bottleneck: packets are serialised at rate_mbit through a FIFO holding at
   most queue_ms of transmission time; a packet arriving at a fuller queue is
   dropped (tail drop), as at a router;
4. the one-way delay: a packet leaves the bottleneck and is written out
   delay_ms later.

Single-threaded: one epoll loop over the two TUN descriptors and the control
socket. Packets are never reordered (release times are kept monotonic, also
when the delay is lowered at run time).

Control: a Unix stream socket. A client sends one JSON object on one line and
gets one JSON line back with the parameters in force and the counters:
    {"set": {"rate_mbit": 50, "delay_ms": 25, "loss_pct": 0.5, "queue_ms": 50, "down": false}}
    {"stats": true}
    {"reset_stats": true}
rate_mbit 0 or null means no bottleneck. Unknown keys are refused.

The process prints "ready" on stdout once both devices and the control socket
are open, ends on SIGTERM/SIGINT or when its parent dies, and removes its
control socket.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import errno
import fcntl
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1

# epoll's timeout has millisecond resolution and rounds up: a packet is released
# when its time is at most this close, so the mean error is about zero instead of
# +0.5..1 ms per direction.
EARLY = 0.0005
READ_BATCH = 256
MAX_PACKET = 65536

_libc = ctypes.CDLL(None, use_errno=True)


def setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def open_tun(netns: str, dev: str) -> int:
    """Attach to TUN device `dev` inside network namespace `netns` (a name under
    /run/netns or a path)."""
    path = netns if "/" in netns else f"/run/netns/{netns}"
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(path, os.O_RDONLY)
    try:
        setns(target)
        try:
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
            try:
                fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", dev.encode(), IFF_TUN | IFF_NO_PI))
            except OSError:
                os.close(fd)
                raise
        finally:
            setns(own)
    finally:
        os.close(target)
        os.close(own)
    return fd


class Params:
    FIELDS = ("rate_mbit", "delay_ms", "loss_pct", "queue_ms", "down")

    def __init__(self, rate_mbit=0.0, delay_ms=0.0, loss_pct=0.0, queue_ms=50.0, down=False):
        self.rate_mbit = rate_mbit
        self.delay_ms = delay_ms
        self.loss_pct = loss_pct
        self.queue_ms = queue_ms
        self.down = down
        self.check()

    def update(self, changes: dict) -> None:
        unknown = set(changes) - set(self.FIELDS)
        if unknown:
            raise ValueError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        old = self.as_dict()
        for key, value in changes.items():
            setattr(self, key, value)
        try:
            self.check()
        except ValueError:
            for key, value in old.items():
                setattr(self, key, value)
            raise

    def check(self) -> None:
        self.rate_mbit = float(self.rate_mbit or 0)
        self.delay_ms = float(self.delay_ms or 0)
        self.loss_pct = float(self.loss_pct or 0)
        self.queue_ms = float(self.queue_ms if self.queue_ms is not None else 50)
        if not isinstance(self.down, bool):
            raise ValueError("down must be true or false")
        if self.rate_mbit < 0 or self.delay_ms < 0 or self.queue_ms <= 0:
            raise ValueError("rate_mbit and delay_ms must be >= 0, queue_ms > 0")
        if not 0 <= self.loss_pct <= 100:
            raise ValueError("loss_pct must be within 0..100")

    def as_dict(self) -> dict:
        return {key: getattr(self, key) for key in self.FIELDS}


class Direction:
    """One way through the WAN: reads from `src`, writes to `dst`."""

    def __init__(self, name: str, src: int, dst: int, params: Params, rng: random.Random):
        self.name = name
        self.src = src
        self.dst = dst
        self.params = params
        self.rng = rng
        self.queue: collections.deque = collections.deque()  # (release time, packet)
        self.busy_until = 0.0  # when the bottleneck finishes sending what it holds
        self.last_release = 0.0
        self.reset_stats()

    def reset_stats(self) -> None:
        self.stats = {"packets_in": 0, "bytes_in": 0, "packets_out": 0, "bytes_out": 0,
                      "dropped_loss": 0, "dropped_queue": 0, "dropped_down": 0, "dropped_write": 0}

    def accept(self, packet: bytes, now: float) -> None:
        stats = self.stats
        stats["packets_in"] += 1
        stats["bytes_in"] += len(packet)
        params = self.params
        if params.down:
            stats["dropped_down"] += 1
            return
        if params.loss_pct and self.rng.random() * 100.0 < params.loss_pct:
            stats["dropped_loss"] += 1
            return
        if params.rate_mbit:
            start = self.busy_until if self.busy_until > now else now
            if start - now > params.queue_ms / 1000.0:
                stats["dropped_queue"] += 1
                return
            self.busy_until = start + len(packet) * 8 / (params.rate_mbit * 1e6)
            release = self.busy_until
        else:
            release = now
        release += params.delay_ms / 1000.0
        if release < self.last_release:
            release = self.last_release
        self.last_release = release
        self.queue.append((release, packet))

    def release(self, now: float) -> None:
        queue = self.queue
        stats = self.stats
        limit = now + EARLY
        while queue and queue[0][0] <= limit:
            packet = queue.popleft()[1]
            try:
                os.write(self.dst, packet)
            except OSError:
                # EIO while the device is down, ENOBUFS/EAGAIN under pressure: the packet is lost.
                stats["dropped_write"] += 1
                continue
            stats["packets_out"] += 1
            stats["bytes_out"] += len(packet)

    def flush(self) -> None:
        self.stats["dropped_down"] += len(self.queue)
        self.queue.clear()
        self.busy_until = 0.0

    def read(self, now: float) -> None:
        for _ in range(READ_BATCH):
            try:
                packet = os.read(self.src, MAX_PACKET)
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno in (errno.EAGAIN, errno.EINTR):
                    return
                raise
            self.accept(packet, now)


class _Stop(Exception):
    pass


class Forwarder:
    def __init__(self, fd_a: int, fd_b: int, control_path: str, params: Params, seed: int | None):
        self.params = params
        rng = random.Random(seed)
        self.a_to_b = Direction("a_to_b", fd_a, fd_b, params, rng)
        self.b_to_a = Direction("b_to_a", fd_b, fd_a, params, rng)
        self.directions = (self.a_to_b, self.b_to_a)
        self.control_path = control_path
        self.control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.control.bind(control_path)
        os.chmod(control_path, 0o600)
        self.control.listen(8)
        self.control.setblocking(False)
        self.running = True

    def stop(self, *_):
        self.running = False
        raise _Stop()

    def handle_control(self) -> None:
        try:
            conn, _ = self.control.accept()
        except BlockingIOError:
            return
        with conn:
            conn.settimeout(2.0)
            try:
                data = b""
                while not data.endswith(b"\n") and len(data) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                request = json.loads(data or b"{}")
                if not isinstance(request, dict):
                    raise ValueError("a JSON object is expected")
                unknown = set(request) - {"set", "stats", "reset_stats"}
                if unknown:
                    raise ValueError(f"unknown request key(s): {', '.join(sorted(unknown))}")
                if "set" in request:
                    was_down = self.params.down
                    self.params.update(request["set"])
                    if self.params.down and not was_down:
                        for direction in self.directions:
                            direction.flush()
                if request.get("reset_stats"):
                    for direction in self.directions:
                        direction.reset_stats()
                reply = {"ok": True, "params": self.params.as_dict(),
                         "stats": {d.name: dict(d.stats, queued=len(d.queue)) for d in self.directions}}
            except (ValueError, TypeError, OSError) as error:
                reply = {"ok": False, "error": str(error)}
            try:
                conn.sendall(json.dumps(reply).encode() + b"\n")
            except OSError:
                pass

    def run(self) -> None:
        poller = select.epoll()
        poller.register(self.a_to_b.src, select.EPOLLIN)
        poller.register(self.b_to_a.src, select.EPOLLIN)
        poller.register(self.control.fileno(), select.EPOLLIN)
        by_fd = {self.a_to_b.src: self.a_to_b, self.b_to_a.src: self.b_to_a}
        control_fd = self.control.fileno()
        monotonic = time.monotonic
        while self.running:
            now = monotonic()
            for direction in self.directions:
                if direction.queue:
                    direction.release(now)
            due = [d.queue[0][0] for d in self.directions if d.queue]
            timeout = max(0.0, min(due) - now - EARLY) if due else 1.0
            try:
                events = poller.poll(timeout)
            except _Stop:
                break
            now = monotonic()
            for fd, _ in events:
                if fd == control_fd:
                    self.handle_control()
                else:
                    by_fd[fd].read(now)
        poller.close()

    def close(self) -> None:
        self.control.close()
        try:
            os.unlink(self.control_path)
        except FileNotFoundError:
            pass


def parse_end(text: str) -> tuple[str, str]:
    netns, sep, dev = text.rpartition(":")
    if not sep or not netns or not dev:
        raise argparse.ArgumentTypeError("expected NETNS:DEV")
    return netns, dev


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.netbed.forwarder", description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", type=parse_end, required=True, help="NETNS:DEV of the first TUN device")
    parser.add_argument("--b", type=parse_end, required=True, help="NETNS:DEV of the second TUN device")
    parser.add_argument("--control", required=True, help="path of the control socket to create")
    parser.add_argument("--rate-mbit", type=float, default=0.0)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay")
    parser.add_argument("--loss-pct", type=float, default=0.0)
    parser.add_argument("--queue-ms", type=float, default=50.0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)

    # End with the process that started us, whatever way it ends.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:
        return 1
    forwarder = None
    try:
        params = Params(args.rate_mbit, args.delay_ms, args.loss_pct, args.queue_ms)
        fd_a = open_tun(*args.a)
        fd_b = open_tun(*args.b)
        forwarder = Forwarder(fd_a, fd_b, args.control, params, args.seed)
        signal.signal(signal.SIGTERM, forwarder.stop)
        signal.signal(signal.SIGINT, forwarder.stop)
        print("ready", flush=True)
        try:
            forwarder.run()
        except _Stop:
            pass
    except (OSError, ValueError) as error:
        print(f"forwarder: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        if forwarder is not None:
            forwarder.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
