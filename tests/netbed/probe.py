"""A small TCP probe: reachability, round-trip time and bulk throughput,
measured where the bytes arrive.

    python -m tests.netbed.probe serve [--bind ADDR] [--port PORT]
        prints "listening PORT", then serves until killed (one thread per connection)
    python -m tests.netbed.probe connect HOST PORT [--timeout S]
    python -m tests.netbed.probe rtt HOST PORT [--count N] [--cc NAME]
    python -m tests.netbed.probe send HOST PORT --seconds S [--streams N] [--cc NAME] [--interval I]

Each client prints one JSON object on stdout.

`send` opens N connections and pushes bytes for S seconds. The *server* counts
what it receives, sampling the running total every `interval` seconds (also when
nothing arrives, e.g. while the link is down), and reports the samples back; the
client then resets the connections (SO_LINGER 0) so no orphaned socket keeps
draining a full send buffer into the next measurement. Throughput is therefore
what crossed the path, not what the sender queued locally.

The client also reports each connection's congestion control, MSS, smoothed RTT
and retransmissions from TCP_INFO.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import struct
import sys
import threading
import time

from tests.netbed.measure import sum_samples

TCP_CONGESTION = getattr(socket, "TCP_CONGESTION", 13)
TCP_INFO = getattr(socket, "TCP_INFO", 11)
CHUNK = 256 * 1024
def tcp_info(sock: socket.socket) -> dict:
    raw = sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 232)
    fields = struct.unpack_from("8B24I", raw)
    ints = fields[8:]
    return {"snd_mss": ints[2], "rcv_mss": ints[3], "lost": ints[6], "retrans": ints[7],
            "rtt_ms": ints[15] / 1000.0, "rttvar_ms": ints[16] / 1000.0, "snd_cwnd": ints[18],
            "total_retrans": ints[23]}


def congestion_control(sock: socket.socket) -> str:
    return sock.getsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, 16).split(b"\0")[0].decode()


def read_line(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1 if len(data) < 4096 else 65536)
        if not chunk:
            break
        data += chunk
        if len(data) > limit:
            raise ValueError("line too long")
    return data


# --- server -----------------------------------------------------------------

def serve_connection(conn: socket.socket) -> None:
    with conn:
        try:
            header = json.loads(read_line(conn) or b"{}")
            mode = header.get("mode")
            if mode == "echo":
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                while True:
                    data = conn.recv(65536)
                    if not data:
                        return
                    conn.sendall(data)
            elif mode == "sink":
                sink(conn, float(header["seconds"]), float(header.get("interval", 0.1)))
            else:
                conn.sendall(b'{"ok": true}\n')
        except (OSError, ValueError, KeyError):
            return


def sink(conn: socket.socket, seconds: float, interval: float) -> None:
    buffer = bytearray(CHUNK)
    start = time.monotonic()
    end = start + seconds
    total = 0
    samples = [[0.0, 0]]
    next_tick = start + interval
    conn.settimeout(interval)
    while True:
        now = time.monotonic()
        while now >= next_tick and next_tick <= end + 1e-9:
            samples.append([round(next_tick - start, 4), total])
            next_tick += interval
        if now >= end:
            break
        conn.settimeout(max(0.001, min(next_tick, end) - now))
        try:
            n = conn.recv_into(buffer)
        except socket.timeout:
            continue
        if not n:
            break
        total += n
    conn.settimeout(10)
    conn.sendall(json.dumps({"bytes": total, "seconds": seconds, "samples": samples}).encode() + b"\n")
    # Drain until the client resets the connection.
    try:
        while conn.recv_into(buffer):
            pass
    except OSError:
        pass


def serve(bind: str, port: int) -> int:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((bind, port))
    listener.listen(64)
    print(f"listening {listener.getsockname()[1]}", flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve_connection, args=(conn,), daemon=True).start()


# --- clients ----------------------------------------------------------------

def open_socket(host: str, port: int, cc: str | None, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if cc:
        sock.setsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, cc.encode())
    sock.settimeout(timeout)
    sock.connect((host, port))
    return sock


def do_connect(host: str, port: int, timeout: float) -> dict:
    started = time.monotonic()
    try:
        with open_socket(host, port, None, timeout) as sock:
            sock.sendall(b"{}\n")
            reply = read_line(sock)
        return {"ok": reply.startswith(b'{"ok": true}'), "ms": (time.monotonic() - started) * 1000}
    except OSError as error:
        return {"ok": False, "error": f"{type(error).__name__}: {error}"}


def do_rtt(host: str, port: int, count: int, cc: str | None, timeout: float) -> dict:
    with open_socket(host, port, cc, timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(b'{"mode": "echo"}\n')
        rtts = []
        for _ in range(count + 1):
            started = time.monotonic()
            sock.sendall(b"x")
            if not sock.recv(1):
                raise ConnectionError("echo server closed the connection")
            rtts.append((time.monotonic() - started) * 1000)
            time.sleep(0.01)
        rtts = sorted(rtts[1:])  # the first exchange may still see the handshake's ACK
        return {"count": count, "min_ms": rtts[0], "median_ms": rtts[len(rtts) // 2], "max_ms": rtts[-1],
                "cc": congestion_control(sock)}


def do_send(host: str, port: int, seconds: float, streams: int, cc: str | None, interval: float,
            timeout: float) -> dict:
    socks = [open_socket(host, port, cc, timeout) for _ in range(streams)]
    payload = os.urandom(CHUNK)
    header = json.dumps({"mode": "sink", "seconds": seconds, "interval": interval}).encode() + b"\n"
    for sock in socks:
        sock.sendall(header)
        sock.setblocking(False)
    replies = {sock: b"" for sock in socks}
    infos = {}
    pending = set(socks)
    deadline = time.monotonic() + seconds + timeout
    view = memoryview(payload)
    while pending and time.monotonic() < deadline:
        readable, writable, _ = select.select(list(pending), list(pending), [], 0.5)
        for sock in readable:
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            replies[sock] += data
            if not data or replies[sock].endswith(b"\n"):
                infos[sock] = tcp_info(sock)
                pending.discard(sock)
        for sock in writable:
            if sock in pending:
                try:
                    sock.send(view)
                except (BlockingIOError, InterruptedError):
                    pass
    results = []
    for sock in socks:
        result = json.loads(replies[sock] or b"{}")
        result["cc"] = congestion_control(sock)
        result["tcp_info"] = infos.get(sock) or tcp_info(sock)
        results.append(result)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    if len(results) != streams or any("samples" not in r for r in results):
        raise ConnectionError("the server did not report on every stream")
    total = sum_samples(results)
    return {"streams": results, "samples": total, "mbit": total[-1][1] * 8 / seconds / 1e6}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.netbed.probe")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve")
    p.add_argument("--bind", default="0.0.0.0")
    p.add_argument("--port", type=int, default=0)
    for name in ("connect", "rtt", "send"):
        p = sub.add_parser(name)
        p.add_argument("host")
        p.add_argument("port", type=int)
        p.add_argument("--timeout", type=float, default=5.0)
        if name != "connect":
            p.add_argument("--cc", default=None, help="TCP congestion control for the probe's sockets")
        if name == "rtt":
            p.add_argument("--count", type=int, default=20)
        if name == "send":
            p.add_argument("--seconds", type=float, required=True)
            p.add_argument("--streams", type=int, default=1)
            p.add_argument("--interval", type=float, default=0.1)
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args.bind, args.port)
    if args.command == "connect":
        result = do_connect(args.host, args.port, args.timeout)
    elif args.command == "rtt":
        result = do_rtt(args.host, args.port, args.count, args.cc, args.timeout)
    else:
        result = do_send(args.host, args.port, args.seconds, args.streams, args.cc, args.interval, args.timeout)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
