"""Arithmetic for measurements on the bed."""

from __future__ import annotations

TCP_MSS_DEFAULT = 1448  # 1500 MTU - 20 IP - 20 TCP - 12 timestamp option


def mathis_mbit(rtt_ms: float, loss_pct: float, mss: int = TCP_MSS_DEFAULT) -> float:
    """The Mathis et al. estimate MSS / (RTT * sqrt(p)) for one loss-limited TCP
    stream, in Mbit/s (constant C = 1)."""
    return mss * 8 / (rtt_ms / 1000.0 * (loss_pct / 100.0) ** 0.5) / 1e6


def rate_mbit(samples: list, start: float, end: float) -> float:
    """Mean rate in Mbit/s between times `start` and `end` (seconds since the
    stream began) from [[t, cumulative bytes], ...] samples."""
    def at(t):
        best = samples[0]
        for sample in samples:
            if sample[0] <= t + 1e-9:
                best = sample
            else:
                break
        return best
    first, last = at(start), at(end)
    if last[0] <= first[0]:
        return 0.0
    return (last[1] - first[1]) * 8 / (last[0] - first[0]) / 1e6


def sum_samples(streams: list) -> list:
    """Add up the per-stream samples of one probe `send` run (they share a clock
    start to within the connection set-up time)."""
    if not streams:
        return []
    length = min(len(s["samples"]) for s in streams)
    return [[streams[0]["samples"][i][0], sum(s["samples"][i][1] for s in streams)] for i in range(length)]
