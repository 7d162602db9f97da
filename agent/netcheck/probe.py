"""The bounded throughput probe: timed S3 PUTs, one stream, then several in
parallel, for a few tens of MiB and ~10 s at most."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable

from agent.netcheck.host import tcp_counters
from agent.netcheck.limits import Limits
from agent.netcheck.s3 import S3, Payload, S3Error
from dtn_protocol.failures import FailureReason
from dtn_protocol.units import MiB

# A probe lasts never fewer round trips than this (up to PROBE_RTT_CAP_SECONDS): on a 50 ms lossy path a 2 s probe
# caught one stream mid slow start, before its first loss, at 9x what the loss allows it, and the tuning
# sent a 256 MiB file on 4 connections (157 s instead of 22).
PROBE_MIN_ROUND_TRIPS = 100
PROBE_RTT_CAP_SECONDS = 10.0
# A phase that reaches its bytes before its share of those round trips goes on, up to this many times its
# bytes (and at most PHASE_STRETCH_MAX_BYTES): on the bench's lossy 50 ms link one stream sent its 2.8 MiB in
# 0.7 s, mid slow start and before its first loss, at 4.2 MB/s (7x what 0.5% loss allows one cubic stream);
# the check called the path clean, and 256 files of 1 MiB went 4 at once (127 s instead of 15).
PHASE_STRETCH = 4
PHASE_STRETCH_MAX_BYTES = 24 * MiB
# A probe PUT grows while it takes under half a second, up to this.
LARGEST_PUT = 16 * MiB


class Probe:
    def __init__(self, s3: S3, limits: Limits, clock: Callable[[], float], proc: Path):
        self.s3, self.limits, self.clock, self.proc = s3, limits, clock, proc

    def run(self, key: str, rtt_median_ms: float, congestion_control: str | None) -> dict:
        """The report's `probe`: what one stream and `limits.streams` of them carried, and the
        retransmissions of this host meanwhile. Its objects are named `<key>-<n>`."""
        limits = self.limits
        before = tcp_counters(self.proc)
        block = os.urandom(Payload.BLOCK)
        round_trips = min(PROBE_RTT_CAP_SECONDS, PROBE_MIN_ROUND_TRIPS * rtt_median_ms / 1000)
        seconds = max(limits.probe_seconds, round_trips)
        # The phases get less than the whole budget: a PUT in flight at a phase's end finishes, and on a
        # slow lossy path that runs over by a few seconds.
        single = self.phase(key, 1, seconds * 0.3, int(limits.probe_max_bytes * 0.35), block, round_trips * 0.3)
        parallel = self.phase(key, limits.streams, seconds * 0.5, int(limits.probe_max_bytes * 0.65), block,
                               round_trips * 0.5)
        after = tcp_counters(self.proc)
        ratio = None
        if before and after and after[0] > before[0]:
            ratio = round((after[1] - before[1]) / (after[0] - before[0]), 5)
        probe = {
            "rtt_median_ms": rtt_median_ms,
            "congestion_control": congestion_control,
            "single_stream_bytes_per_s": round(single["rate"], 1),
            "parallel_bytes_per_s": round(parallel["rate"], 1), "streams": limits.streams,
            "bytes": single["bytes"] + parallel["bytes"], "seconds": round(single["seconds"] + parallel["seconds"], 2),
            "retransmit_ratio": ratio,
        }
        if single["rate"] <= 0 and parallel["rate"] <= 0:
            raise S3Error(FailureReason.NETWORK_NO_GO, "the throughput probe moved no data")
        return probe

    def phase(self, key: str, streams: int, seconds: float, max_bytes: int, block: bytes,
               min_seconds: float = 0.0) -> dict:
        """`streams` streams of PUTs for up to `seconds` or `max_bytes`; but for at least `min_seconds`
        (within PHASE_STRETCH times the bytes)."""
        now = self.clock()
        deadline, not_before = now + seconds, now + min(min_seconds, seconds)
        per_stream = max(max_bytes // streams, 64 * 1024)
        stretched = max(per_stream, min(PHASE_STRETCH * per_stream, PHASE_STRETCH_MAX_BYTES // streams))
        results: list[dict] = [None] * streams
        errors: list[S3Error] = []

        def stream(n: int) -> None:
            # Growing PUTs on one kept-alive connection: small first so a slow path
            # answers within the time, larger later so the request's own round trip
            # costs little against the bytes.
            size, sent, puts = 128 * 1024, 0, []
            name = f"{key}-{n}"
            try:
                rate = None
                while (now := self.clock()) < deadline:
                    cap = per_stream if now >= not_before else stretched
                    if sent >= cap:
                        break
                    size = min(size, cap - sent, LARGEST_PUT)
                    if rate:
                        # A PUT sized to end about when the phase may: one that outlives it at a lossy
                        # path's rate runs seconds over (a probe of 8 s for a 5 s budget).
                        ends = not_before if sent >= per_stream else deadline
                        size = min(size, max(64 * 1024, int(rate * (ends - now))))
                    begin = self.clock()
                    self.s3.put(name, Payload(block, size))
                    end = self.clock()
                    sent += size
                    puts.append((begin, end, size))
                    rate = size / (end - begin) if end > begin else None
                    if end - begin < 0.5:
                        size *= 2
                self.s3.remove(name)
            except S3Error as exc:
                errors.append(exc)
            results[n] = {"puts": puts, "bytes": sent}

        started = self.clock()
        threads = [threading.Thread(target=stream, args=(n,), daemon=True) for n in range(streams)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors and not any(r and r["bytes"] for r in results):
            raise errors[0]
        return {"rate": steady_rate(started, [r["puts"] for r in results if r]),
                "bytes": sum(r["bytes"] for r in results if r), "seconds": self.clock() - started}


def steady_rate(start: float, streams: list[list[tuple[float, float, int]]]) -> float:
    """Bytes/s the streams carried together once they got going. Each stream's rate
    leaves out its first PUT (connection set-up, slow start) when enough follow it;
    their sum is capped by the bytes of those later PUTs over the wall time they
    spanned together, since streams that end at different times would otherwise
    each be credited with the whole path."""
    total, steady_bytes, spans = 0.0, 0, []
    for puts in streams:
        if not puts:
            continue
        if len(puts) >= 3:
            later = puts[1:]
            first_end, last_end = puts[0][1], puts[-1][1]
            total += sum(p[2] for p in later) / (last_end - first_end) if last_end > first_end else 0.0
        else:
            later = puts
            total += sum(p[2] for p in puts) / (puts[-1][1] - start) if puts[-1][1] > start else 0.0
        steady_bytes += sum(p[2] for p in later)
        spans += [(p[0], p[1]) for p in later]
    if not spans:
        return 0.0
    wall = max(e for _, e in spans) - min(b for b, _ in spans)
    return min(total, steady_bytes / wall) if wall > 0 else total

