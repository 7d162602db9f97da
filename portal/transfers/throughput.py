"""A transfer's throughput over time, and the stalls in it.

Each progress report carries samples `[unix time, bytes sent by this attempt]`
taken about once a second. The series kept on the transfer is rates over time
(`[seconds since the transfer started, bytes/s]`), at most MAX_POINTS of them:
when full, neighbours are merged, so a long transfer keeps its whole shape at a
coarser grain.

A stall (or a collapse) is throughput below STALL_FRACTION of the reference —
what the network check measured, or the transfer's own typical rate when there
was no probe — for DTN_STALL_SECONDS while bytes remain. It is flagged once in the
event log with the retries and errors seen so far, and closed when the rate
comes back above RECOVER_FRACTION (hysteresis, so it does not flap)."""

from __future__ import annotations

import statistics

from django.conf import settings

from dtn_protocol.options import limit_bytes_per_s
from dtn_protocol.units import human_speed

MAX_POINTS = 600
STALL_FRACTION = 0.1
RECOVER_FRACTION = 0.3
MAX_SAMPLES = 2000


class SampleError(ValueError):
    pass


def parse_samples(raw) -> list[tuple[float, int]]:
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > MAX_SAMPLES:
        raise SampleError(f"must be a list of at most {MAX_SAMPLES} [time, bytes] pairs")
    out = []
    for item in raw:
        if (not isinstance(item, list) or len(item) != 2 or isinstance(item[0], bool) or isinstance(item[1], bool)
                or not isinstance(item[0], (int, float)) or not isinstance(item[1], int) or item[1] < 0
                or not 0 < item[0] < 2**40):
            raise SampleError("each sample must be [unix time, bytes sent so far]")
        out.append((float(item[0]), item[1]))
    return out


def add_samples(transfer, samples: list[tuple[float, int]], attempt_key: str) -> list[str]:
    """Fold samples into the series; the names of the fields changed."""
    if not samples:
        return []
    series = dict(transfer.throughput or {})
    points = list(series.get("points", []))
    last = series.get("last")
    origin = series.get("origin")
    if origin is None:
        origin = transfer.started_at.timestamp() if transfer.started_at else samples[0][0]
    for at, sent in samples:
        same_attempt = bool(last) and last[2] == attempt_key
        if same_attempt and at <= last[0]:
            continue  # sent again (a report whose reply was lost): already in the series
        # Rates only within one attempt: a new lease counts its bytes from zero again.
        if same_attempt and sent >= last[1]:
            points.append([round(at - origin, 2), round((sent - last[1]) / (at - last[0]), 1)])
        last = [at, sent, attempt_key]
    while len(points) > MAX_POINTS:
        points = _merged(points)
    series.update(origin=origin, points=points, last=last)
    transfer.throughput = series
    return ["throughput"]


def _merged(points):
    out = []
    for i in range(0, len(points) - 1, 2):
        (t0, r0), (_, r1) = points[i], points[i + 1]
        out.append([t0, round((r0 + r1) / 2, 1)])
    if len(points) % 2:
        out.append(points[-1])
    return out


def probe_rate(report) -> float | None:
    """What the network check's probe carried at best (bytes/s)."""
    probe = report.get("probe") if isinstance(report, dict) else None
    if not isinstance(probe, dict):
        return None
    rates = [probe.get(k) for k in ("single_stream_bytes_per_s", "parallel_bytes_per_s")]
    return max((r for r in rates if isinstance(r, (int, float)) and not isinstance(r, bool)), default=0) or None


def set_reference(transfer, report) -> None:
    """Kept in the series itself, so a report's stall check needs no query for the check."""
    transfer.throughput = {**(transfer.throughput or {}), "reference": probe_rate(report)}


def reference_rate(transfer) -> float | None:
    rate = (transfer.throughput or {}).get("reference")
    points = (transfer.throughput or {}).get("points", [])
    if rate is None and len(points) >= 10:
        rate = statistics.median(p[1] for p in points) or None
    limit = limit_bytes_per_s(transfer.bandwidth_limit)
    if rate is not None and limit:
        rate = min(rate, limit)
    return rate


def detect_stall(transfer, progress: dict) -> tuple[str, str] | None:
    """('stall' | 'recovered', message) when the state changes, else None.
    Changes transfer.stalls in place; the caller saves it."""
    points = (transfer.throughput or {}).get("points", [])
    if not points or not any(p[1] > 0 for p in points):
        return None  # nothing moved yet: rclone may still be hashing or listing
    now = points[-1][0]
    stall_seconds = settings.DTN_STALL_SECONDS
    window = [p for p in points if p[0] > now - stall_seconds]
    first_moving = next(p[0] for p in points if p[1] > 0)
    if now - first_moving < stall_seconds or not window:
        return None
    mean = sum(p[1] for p in window) / len(window)
    stalls = list(transfer.stalls or [])
    open_stall = stalls[-1] if stalls and stalls[-1].get("end_s") is None else None
    reference = reference_rate(transfer)
    if reference is None:
        return None
    left = transfer.bytes_total - transfer.bytes_transferred
    if open_stall is None and mean < STALL_FRACTION * reference and left > 0:
        what = ("no bytes moved" if mean < 1 else f"throughput fell to {human_speed(mean)}")
        message = (f"{what} over the last {stall_seconds:.0f} s, under {STALL_FRACTION:.0%} of the"
                   f" {human_speed(reference)} expected; retries so far: {progress.get('retries', 0)},"
                   f" errors: {progress.get('errors', 0)}")
        if progress.get("last_error"):
            message += f"; last error: {str(progress['last_error'])[:300]}"
        stalls.append({"start_s": window[0][0], "end_s": None, "message": message})
        transfer.stalls = stalls[-50:]
        return "stall", message
    if open_stall is not None and (mean >= RECOVER_FRACTION * reference or left <= 0):
        open_stall["end_s"] = now
        transfer.stalls = stalls
        return "recovered", (f"throughput is back at {human_speed(mean)} after"
                             f" {now - open_stall['start_s']:.0f} s of stall")
    return None


def close_stalls(transfer) -> bool:
    stalls = list(transfer.stalls or [])
    if stalls and stalls[-1].get("end_s") is None:
        points = (transfer.throughput or {}).get("points", [])
        stalls[-1]["end_s"] = points[-1][0] if points else stalls[-1]["start_s"]
        transfer.stalls = stalls
        return True
    return False


def chart(transfer) -> dict:
    """What the status JSON shows: the series without its bookkeeping."""
    series = transfer.throughput or {}
    return {"points": series.get("points", [])}
