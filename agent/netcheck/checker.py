"""The check itself: each step recorded whether it passes or not, then a verdict."""

from __future__ import annotations

import math
import os
import statistics
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from agent.netcheck.host import host_tcp, resolve as resolve_name, tcp_connect_to
from agent.netcheck.limits import Limits
from agent.netcheck.probe import Probe
from agent.netcheck.report import GO, NO_GO, WARN, human_rate, summarise
from agent.netcheck.s3 import S3, S3Error
from agent.netcheck.tcp import tcp_tuning
from agent.tcptune import congestion_control_to, route_congestion_control
from agent.tuning import scales_with_streams
from dtn_protocol.failures import FailureReason
from dtn_protocol.units import human_bytes


@dataclass
class Target:
    endpoint: str
    host: str
    port: int
    tls: bool
    pinned_sha256: str | None


class Checker:
    def __init__(self, target: Target, s3: S3 | None, *, limits: Limits = Limits(),
                 tcp_connect: Callable[[str, int, float], None] | None = None,
                 tls_fingerprint: Callable[[str, int], str] | None = None,
                 resolve: Callable[[str, int], list[str]] | None = None,
                 clock: Callable[[], float] = time.monotonic, proc: Path = Path("/proc")):
        self.t = target
        self.s3 = s3
        self.limits = limits
        self.tcp_connect = tcp_connect or tcp_connect_to
        self.tls_fingerprint = tls_fingerprint
        self.resolve = resolve or resolve_name
        self.clock = clock
        self.proc = proc
        self.findings: list[dict] = []
        self.report: dict = {}

    def finding(self, level: str, code: str, message: str) -> None:
        self.findings.append({"level": level, "code": code, "message": message})

    def no_go(self, reason: FailureReason, code: str, message: str) -> dict:
        self.finding(NO_GO, code, message)
        self.report["reason"] = str(reason)
        return self.finish()

    def run(self, *, probe: bool = True, total_bytes: int | None = None, files: int | None = None,
            free_bytes: int | None = None, earlier_probe: dict | None = None) -> dict:
        """`earlier_probe`: a recent probe of this endpoint to use instead of probing again."""
        started = self.clock()
        t = self.t
        # The routes are read only from the real /proc: a test's fake /proc has no netlink beside it.
        routes = route_congestion_control() if self.proc == Path("/proc") else None
        self.report = {"endpoint": t.endpoint, "reason": "", "probe": None, "rtt_ms": None,
                       "host": host_tcp(self.proc, routes=routes), "total_bytes": total_bytes, "files": files,
                       "free_bytes": free_bytes}
        try:
            addresses = self.resolve(t.host, t.port)
        except OSError as exc:
            return self.no_go(FailureReason.RECEIVER_UNREACHABLE, "unresolvable",
                              f"the name {t.host!r} does not resolve: {exc.strerror or exc}")
        self.report["addresses"] = addresses
        if self.proc == Path("/proc") and addresses:
            # What a connection to this receiver gets: the route to it decides, whatever the others say.
            on_route = congestion_control_to(addresses[0])
            if on_route is not None:
                # A route naming none (policy routing past the main table, say) leaves the default in effect.
                host = self.report["host"]
                host.update(congestion_control=on_route or host["default_congestion_control"],
                            congestion_control_from="routes" if on_route else "default")
        rtts, last_error = [], ""
        for _ in range(self.limits.rtt_samples):
            begin = self.clock()
            try:
                self.tcp_connect(t.host, t.port, self.limits.connect_timeout)
            except OSError as exc:
                last_error = exc.strerror or str(exc) or type(exc).__name__
                continue
            rtts.append((self.clock() - begin) * 1000)
        if not rtts:
            return self.no_go(FailureReason.RECEIVER_UNREACHABLE, "unreachable",
                              f"nothing accepts connections at {t.host}:{t.port}: {last_error}")
        self.report["rtt_ms"] = {"min": round(min(rtts), 3), "median": round(statistics.median(rtts), 3),
                                 "max": round(max(rtts), 3), "samples": len(rtts)}
        if len(rtts) < self.limits.rtt_samples:
            self.finding(WARN, "flaky_connect", f"{self.limits.rtt_samples - len(rtts)} of"
                         f" {self.limits.rtt_samples} connections to {t.host}:{t.port} failed ({last_error})")
        if t.tls and t.pinned_sha256 and self.tls_fingerprint is not None:
            try:
                actual = self.tls_fingerprint(t.host, t.port)
            except OSError as exc:
                return self.no_go(FailureReason.RECEIVER_UNREACHABLE, "tls_unreachable",
                                  f"the TLS handshake with {t.host}:{t.port} failed: {exc}")
            if actual != t.pinned_sha256:
                return self.no_go(FailureReason.CERTIFICATE_MISMATCH, "certificate",
                                  f"{t.endpoint} presents a certificate with SHA-256 {actual}; the portal pinned"
                                  f" {t.pinned_sha256}")
            self.report["tls"] = {"pinned": True, "sha256": actual}
        elif t.tls:
            self.report["tls"] = {"pinned": False}
        if self.s3 is None:
            return self.finish()
        key = f".dtn-netcheck-{uuid.uuid4().hex[:12]}"
        try:
            self._write_read_remove(key)
            if probe and earlier_probe is not None and self._same_path(earlier_probe):
                self.report["probe"] = earlier_probe
            elif probe:
                self.report["probe"] = Probe(self.s3, self.limits, self.clock, self.proc).run(
                    key, self.report["rtt_ms"]["median"], self.report["host"].get("congestion_control"))
        except S3Error as exc:
            code = {FailureReason.AUTH_FAILED: "auth", FailureReason.CERTIFICATE_MISMATCH: "certificate",
                    FailureReason.RECEIVER_UNREACHABLE: "s3_unreachable",
                    FailureReason.RECEIVER_FULL: "no_space"}.get(exc.reason, "s3")
            return self.no_go(exc.reason, code, exc.message)
        self._space()
        self._buffers()
        self.report["seconds"] = round(self.clock() - started, 2)
        return self.finish()

    # --- steps ---

    def _same_path(self, earlier: dict) -> bool:
        """An earlier probe still describes this path if the round trip has not moved much and this host
        still runs the same congestion control (what one stream carries under loss depends on it)."""
        then, now = earlier.get("rtt_median_ms"), self.report["rtt_ms"]["median"]
        if then is None or earlier.get("congestion_control") != self.report["host"].get("congestion_control"):
            return False
        return abs(now - then) <= max(5.0, 0.5 * then)

    def _write_read_remove(self, key: str) -> None:
        payload = os.urandom(64 * 1024)
        self.s3.put(key, payload)
        try:
            back = self.s3.get(key)
        finally:
            self.s3.remove(key)
        if back != payload:
            raise S3Error(FailureReason.NETWORK_NO_GO, f"an object written to the bucket read back different"
                          f" ({len(back)} bytes instead of {len(payload)}): something on the path alters data")
        self.report["s3"] = {"write": True, "read_back": True, "remove": True}

    def _space(self) -> None:
        free, total = self.report.get("free_bytes"), self.report.get("total_bytes")
        if free is None or total is None:
            return
        if free < total:
            raise_full = (f"the receiver has {human_bytes(free)} free; this transfer needs {human_bytes(total)}")
            self.finding(NO_GO, "no_space", raise_full)
            self.report["reason"] = str(FailureReason.RECEIVER_FULL)
        elif free < total * 1.1 + 1024**3:
            self.finding(WARN, "little_space", f"the receiver has {human_bytes(free)} free; this transfer takes"
                         f" {human_bytes(total)} of it, leaving little room")

    def _buffers(self) -> None:
        """BDP against this host's buffers and congestion control: what to change, concretely."""
        probe, rtt, host = self.report.get("probe"), self.report.get("rtt_ms"), self.report["host"]
        if not probe or not rtt:
            return
        rtt_s = max(rtt["min"] / 1000, 1e-4)
        single, parallel = probe["single_stream_bytes_per_s"], probe["parallel_bytes_per_s"]
        link = max(single, parallel)
        advice = self.report.setdefault("advice", [])
        bdp = link * rtt_s
        self.report["bdp_bytes"] = int(bdp)
        wmem = (host.get("tcp_wmem") or [0, 0, 0])[2]
        rmem = (host.get("tcp_rmem") or [0, 0, 0])[2]
        window = min(x for x in (wmem, rmem) if x) if (wmem or rmem) else 0
        per_stream_ceiling = window / rtt_s if window else None
        self.report["per_stream_ceiling_bytes_per_s"] = round(per_stream_ceiling, 1) if per_stream_ceiling else None
        streams = probe["streams"]
        # Parallel streams that scale almost linearly mean each stream is held back
        # (by loss or by its window), not the path.
        held_back = scales_with_streams(single, parallel, streams)
        ratio = probe.get("retransmit_ratio")
        # Loss limits a stream in proportion to the round trip (Mathis: MSS/RTT x 1.22/sqrt(p)): on a LAN path
        # it is not what holds a stream back. Retransmissions on a clean long path (slow start overshooting
        # the queue) leave one stream far above that bound; real loss keeps it near it.
        mathis = 1448 / rtt_s * 1.22 / math.sqrt(ratio) if ratio else None
        # One stream's rate under loss is noisy (0.4 to 2.6x that bound on one bed link), so up to 5x the
        # bound still counts. Far above it the retransmissions did not hold the stream back: they were the
        # probe's slow starts overshooting a full bottleneck's queue (on a 50 Mbit/s, 20 ms bed link: 6% of
        # segments with one stream at 12x the bound, 1.75% at 7.8x): congestion, which more connections
        # only make worse.
        # Nor do several streams carrying twice what one did: a full bottleneck gives them no more.
        lossy = (ratio is not None and ratio > self.limits.lossy_retransmit_ratio and rtt_s >= 0.005
                 and (held_back or parallel >= 2 * single or single <= 5 * mathis))
        self.report["held_back"] = held_back
        self.report["lossy"] = lossy
        if link < self.limits.slow_bytes_per_s:
            self.finding(WARN, "slow", f"the path carried {human_rate(link)} with {streams} streams, under the"
                         f" {human_rate(self.limits.slow_bytes_per_s)} this check calls fast")
        if lossy:
            self.finding(WARN, "lossy", f"{ratio * 100:.2f}% of TCP segments were sent again during the probe: the"
                         f" path loses packets, and one stream carried only {human_rate(single)}")
            advice.append("The agent uses many parallel connections on this path, since each carries little.")
        want = None
        if per_stream_ceiling and bdp > window and rtt_s >= 0.005:
            want = 1 << max(22, math.ceil(math.log2(2 * bdp)))
            self.finding(WARN, "window_limited", f"one TCP stream can carry at most {human_rate(per_stream_ceiling)}"
                         f" here ({human_bytes(window)} buffers at {rtt['min']:.0f} ms), less than the"
                         f" {human_rate(link)} the path carried")
        tcp = tcp_tuning(host, lossy=lossy, want_window=want)
        self.report["tcp_tuning"] = tcp
        advice[:0] = [f"Applied: {sentence}." for sentence in tcp["applied"]] + tcp["advised"]
        # A few ms of scheduling noise on a short path is not jitter worth a warning.
        if rtt["max"] > 4 * max(rtt["median"], 1.0) and rtt["max"] - rtt["median"] > 20:
            self.finding(WARN, "jitter", f"round-trip times vary from {rtt['min']:.1f} to {rtt['max']:.1f} ms")

    def finish(self) -> dict:
        levels = {f["level"] for f in self.findings}
        verdict = NO_GO if NO_GO in levels else WARN if WARN in levels else GO
        report = self.report
        report["verdict"] = verdict
        report["reasons"] = list(self.findings)
        report.setdefault("advice", [])
        if "tcp_tuning" not in report:
            # No probe (skipped, or a no-go before it): what this site applied is still worth saying.
            report["tcp_tuning"] = tcp_tuning(report.get("host") or {}, lossy=False, want_window=None)
            report["advice"][:0] = [f"Applied: {sentence}." for sentence in report["tcp_tuning"]["applied"]]
        if verdict == NO_GO and not report.get("reason"):
            report["reason"] = str(FailureReason.NETWORK_NO_GO)
        if verdict != NO_GO:
            report["reason"] = ""
        report["summary"] = summarise(report)
        return report

