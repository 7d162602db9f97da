"""What this host allows and how it reaches the receiver: TCP buffer limits and
congestion control from /proc, TCP counters, a connect, a name resolved."""

from __future__ import annotations

import socket
from pathlib import Path


def host_tcp(proc: Path = Path("/proc"), routes: list[str] | None = None) -> dict:
    """TCP buffer limits and congestion control of this host (its network namespace). `routes`: the
    congestion control each route names (agent/tcptune.py), which wins over the default when they agree:
    a compose site's tcp-tune sets BBR there, since the namespace's default must stay on the host's
    allowed list."""
    def read(rel: str) -> str | None:
        try:
            return (proc / rel).read_text().strip()
        except OSError:
            return None

    def triple(rel):
        text = read(rel)
        try:
            return [int(x) for x in text.split()] if text else None
        except ValueError:
            return None

    def single(rel):
        text = read(rel)
        return int(text) if text and text.isdigit() else None

    available = read("sys/net/ipv4/tcp_available_congestion_control")
    default = read("sys/net/ipv4/tcp_congestion_control")
    named = sorted(set(routes or []))
    on_routes = named[0] if len(named) == 1 and named[0] else None
    return {
        "tcp_rmem": triple("sys/net/ipv4/tcp_rmem"),
        "tcp_wmem": triple("sys/net/ipv4/tcp_wmem"),
        "rmem_max": single("sys/net/core/rmem_max"),
        "wmem_max": single("sys/net/core/wmem_max"),
        "congestion_control": on_routes or default,
        "congestion_control_from": "routes" if on_routes else "default",
        "default_congestion_control": default,
        "available_congestion_control": available.split() if available else [],
    }


def tcp_counters(proc: Path = Path("/proc")) -> tuple[int, int] | None:
    """(segments sent, segments retransmitted) by this host so far."""
    try:
        lines = [line.split() for line in (proc / "net/snmp").read_text().splitlines() if line.startswith("Tcp:")]
        names, values = lines[0], lines[1]
        row = dict(zip(names[1:], values[1:]))
        return int(row["OutSegs"]), int(row["RetransSegs"])
    except (OSError, IndexError, KeyError, ValueError):
        return None


def tcp_connect_to(host: str, port: int, timeout: float = 5.0) -> None:
    """Raises OSError when nothing accepts a connection there."""
    socket.create_connection((host, port), timeout=timeout).close()


def resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({info[4][0] for info in infos})
