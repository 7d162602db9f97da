"""The TCP part of the check's advice: what this site already has (a compose site's tcp-tune applies BBR and
64 MiB buffer limits in its own namespace, agent/tcptune.py) is said to be applied; the `sysctl` lines stay
only for what it lacks, since a researcher reads "do this" as "this is missing"."""

from __future__ import annotations

from agent import tcptune
from dtn_protocol.units import human_bytes

BBR_LINE = ("`sysctl -w net.core.default_qdisc=fq net.ipv4.tcp_congestion_control=bbr` on both hosts (a compose"
            " site does it in its own namespace, without touching the host: DTN_TCP_TUNING=true, the default)")


def tcp_tuning(host: dict, *, lossy: bool, want_window: int | None) -> dict:
    """{in_effect, applied, advised}: sentences for the card and the advice list. `want_window`: the
    buffer limit the path needs, when one stream's window cannot fill it."""
    cc = host.get("congestion_control") or "unknown"
    rmem, wmem = (host.get("tcp_rmem") or [0, 0, 0])[2], (host.get("tcp_wmem") or [0, 0, 0])[2]
    window = min(x for x in (rmem, wmem) if x) if (rmem or wmem) else 0
    tuned = tcptune.tuned(host)
    applied, advised = [], []
    if tuned["congestion_control"]:
        where = "on this site's routes" if host.get("congestion_control_from") == "routes" else "as this host's default"
        applied.append(f"BBR congestion control {where}, which keeps its rate on a lossy path")
    elif lossy and cc in ("cubic", "reno"):
        advised.append(f"This host uses {cc}, which slows down at every loss. On a long lossy path BBR keeps"
                       f" its rate (ESnet fasterdata advises it): {BBR_LINE}.")
    if tuned["tcp_rmem"] and tuned["tcp_wmem"]:
        applied.append(f"TCP buffer limits of {human_bytes(window)}, enough for a 10 Gbit/s path at 50 ms")
    if want_window and want_window > window:
        advised.append(f"Raise the TCP buffer limits to {want_window} bytes on both hosts: `sysctl -w"
                       f" net.core.rmem_max={want_window} net.core.wmem_max={want_window}"
                       f" net.ipv4.tcp_rmem='4096 87380 {want_window}' net.ipv4.tcp_wmem='4096 65536 {want_window}'`.")
    return {"in_effect": {"congestion_control": cc, "from": host.get("congestion_control_from", "default"),
                          "tcp_rmem_max": rmem or None, "tcp_wmem_max": wmem or None},
            "applied": applied, "advised": advised}
