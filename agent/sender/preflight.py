"""Before anything is sent (docs/network-check.md): the network check against the
receiver, an unreachable one tried again; the tuning chosen from what it measured
and the files to send; then a last word from rclone itself, with the very remote
its jobs will use."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Callable

from agent import netcheck, tuning
from agent.failures import classify
from agent.rclone import RcError
from agent.sender.destination import Destination, explain, peer_certificate_sha256, pem_sha256
from agent.sender.errors import TransferFailed
from agent.sender.lease import POLL_SECONDS, Lease, rclone_call
from agent.sender.ledger import Ledger, SourcePlan, entries
from agent.sender.meter import Meter
from agent.sender.spec import Spec
from dtn_protocol.failures import FailureReason
from dtn_protocol.netcheck import Verdict
from dtn_protocol.options import CheckMode, limit_bytes_per_s

# A probe path that cannot exist: statting it costs one HEAD and one tiny listing,
# and answers whether the receiver is there and takes the keys.
PROBE_REMOTE = ".dtn-probe/none"
PROBE_CONFIG = {"ConnectTimeout": "5s", "Timeout": "15s", "LowLevelRetries": 1}
# Without reachability, the right certificate and working keys nothing can be sent: no override.
NO_OVERRIDE = (FailureReason.RECEIVER_UNREACHABLE, FailureReason.CERTIFICATE_MISMATCH, FailureReason.AUTH_FAILED)


def minio_s3(d: Destination, ca_file: Path | None, pool_size: int) -> netcheck.S3:
    return netcheck.MinioS3(d.endpoint, d.bucket, d.access_key, d.secret_key, tls=d.tls, ca_file=ca_file,
                            pool_size=pool_size)


def run_network_check(d: Destination, ca_file: Path | None, *, limits: netcheck.Limits,
                      s3_factory: Callable[..., netcheck.S3], tcp_probe=None, tls_fingerprint=None,
                      probe: bool = True, total_bytes: int | None = None, files: int | None = None,
                      earlier_probe: dict | None = None) -> dict:
    """The network check against a command's (or a check task's) destination."""
    host, port = d.host_port
    target = netcheck.Target(d.endpoint, host, port, d.tls, pem_sha256(d.certificate_pem) if ca_file else None)
    s3 = s3_factory(d, ca_file, limits.streams + 1)
    checker = netcheck.Checker(target, s3, limits=limits,
                               tcp_connect=tcp_probe, tls_fingerprint=tls_fingerprint or peer_certificate_sha256)
    try:
        return checker.run(probe=probe, total_bytes=total_bytes, files=files, free_bytes=d.free_bytes,
                           earlier_probe=earlier_probe)
    finally:
        # The probe's connections and their TLS buffers are not kept for the transfer (rclone sends it).
        getattr(s3, "close", lambda: None)()


class ProbeCache:
    """The last full probe of each endpoint, so that back-to-back transfers to one receiver do not
    each pay seconds of probing; reachability, certificate, keys and space are checked every time."""

    def __init__(self):
        self.entries: dict[str, tuple[float, dict]] = {}  # endpoint -> (clock, probe)

    def offer(self, endpoint: str, limits: netcheck.Limits, rate: float | None, now: float) -> dict | None:
        """A probe recent enough to reuse, marked with its age. Not under a bandwidth limit: it would
        measure the limit, not the path."""
        earlier = self.entries.get(endpoint)
        if earlier is None or rate or limits.probe_reuse_seconds <= 0 or now - earlier[0] > limits.probe_reuse_seconds:
            return None
        return {**earlier[1], "reused_from_seconds_ago": round(now - earlier[0], 1)}

    def learn(self, endpoint: str, report: dict, rate: float | None, now: float) -> None:
        fresh = report.get("probe")
        # A probe offered for reuse but refused (the path changed) is replaced by the one just made.
        if fresh and "reused_from_seconds_ago" not in fresh and not rate and report["verdict"] != Verdict.NO_GO:
            self.entries[endpoint] = (now, fresh)
        elif report["verdict"] == Verdict.NO_GO:
            self.entries.pop(endpoint, None)


class Preflight:
    def __init__(self, runner, spec: Spec, ledger: Ledger, plans: list[SourcePlan], meter: Meter, lease: Lease):
        self.runner, self.spec, self.ledger, self.plans = runner, spec, ledger, plans
        self.meter, self.lease = meter, lease

    def run(self, ca_file: Path | None) -> tuning.Choice:
        """The tuning to send with, once the receiver is known to be there, to present the pinned
        certificate and to take the keys; a no-go stops the transfer unless the user overrode it."""
        r, d, mode = self.runner, self.spec.destination, self.spec.network_check
        started = r.clock()
        attempts = r.receiver_attempts
        for attempt in range(1, attempts + 1):
            report = self._check(ca_file, probe=mode != CheckMode.SKIP)
            if report["reason"] != FailureReason.RECEIVER_UNREACHABLE:
                if attempt > 1:
                    self.meter.event("retry", f"{d.endpoint} answered on attempt {attempt}")
                break
            if attempt < attempts:
                self.meter.retries += 1
                self.meter.event("retry", f"{d.endpoint} did not answer (attempt {attempt} of {attempts}):"
                                 f" {first_no_go(report)}; trying again in {r.receiver_retry_seconds:g} s")
                self.lease.wait(within=r.receiver_retry_seconds)
        else:
            raise TransferFailed(FailureReason.RECEIVER_UNREACHABLE,
                                 f"{d.endpoint} did not answer after {attempts} attempts over"
                                 f" {r.clock() - started:.0f} s: {first_no_go(report)}")
        choice = self._choose(report)
        self.meter.event("network_check", report["summary"])
        self.meter.check_report = report
        if report["verdict"] == Verdict.NO_GO:
            reason = FailureReason(report["reason"])
            if mode == CheckMode.ENFORCE or reason in NO_OVERRIDE:
                raise TransferFailed(reason, explain(reason, d, first_no_go(report)))
            self.meter.event("warning", f"the network check says no-go ({first_no_go(report)}); going ahead, as"
                             " the user overrode it")
        if ca_file is not None:
            self.meter.event("tls", f"{d.endpoint} presents the pinned certificate"
                                    f" (SHA-256 {pem_sha256(d.certificate_pem)[:23]}…); nothing else is trusted")
        # The check spoke S3 through its own client; this asks rclone, with the very remote (pinned
        # certificate, tuning) its jobs will use, so a remote rclone cannot use fails here, by reason.
        params = choice.remote_params() if r.tune else {}
        try:
            rclone_call(self.lease, r.rc.stat, d.remote("", ca_file, params), PROBE_REMOTE, config=PROBE_CONFIG)
        except RcError as exc:
            reason = classify(exc.message)
            raise TransferFailed(reason, explain(reason, d, exc.message)) from None
        return choice

    def _check(self, ca_file: Path | None, probe: bool) -> dict:
        """The check runs in a thread while this one keeps the lease and hears a stop."""
        r, endpoint = self.runner, self.spec.destination.endpoint
        rate = limit_bytes_per_s(self.spec.bandwidth_limit)
        limits = r.network_limits.for_transfer(self.ledger.total_bytes, rate)
        reuse = r.probes.offer(endpoint, limits, rate, r.clock())
        result: dict = {}

        def work():
            try:
                result["report"] = run_network_check(
                    self.spec.destination, ca_file, limits=limits, s3_factory=r.s3_factory,
                    tcp_probe=r.tcp_probe, tls_fingerprint=r.tls_fingerprint, probe=probe,
                    total_bytes=self.ledger.total_bytes, files=self.ledger.count, earlier_probe=reuse)
            except BaseException as exc:  # handed to the waiting thread
                result["error"] = exc

        thread = threading.Thread(target=work, name="network-check", daemon=True)
        thread.start()
        self.lease.wait(until=lambda: not _still_running(thread, POLL_SECONDS), every=0)
        if "error" in result:
            raise result["error"]
        r.probes.learn(endpoint, result["report"], rate, r.clock())
        return result["report"]

    def _choose(self, report: dict) -> tuning.Choice:
        r, spec = self.runner, self.spec
        mix = tuning.FileMix.of(e.size for e in entries(self.plans))
        measured = tuning.Measured.from_report(report) if r.tune else None
        choice = tuning.choose(measured, mix, spec.tuning)
        if measured is None and "transfers" not in spec.tuning:
            choice = replace(choice, transfers=r.transfers)
        limit = limit_bytes_per_s(spec.bandwidth_limit)
        if limit and choice.predicted_seconds is not None and mix.total_bytes / choice.predicted_seconds > limit:
            seconds = round(mix.total_bytes / limit + 1.0, 1)
            choice = replace(choice, predicted_seconds=seconds, predicted_bytes_per_s=round(mix.total_bytes / seconds, 1))
        netcheck.attach_tuning(report, choice)
        why = "; ".join(choice.reasons)
        if choice.overridden:
            why += f"; set by the user: {', '.join(choice.overridden)}"
        self.meter.event("tuning", f"{choice.describe()}: {why}")
        return choice


def _still_running(thread: threading.Thread, seconds: float) -> bool:
    """Whether the thread runs on after waiting up to `seconds` for it to end."""
    thread.join(seconds)
    return thread.is_alive()


def first_no_go(report: dict) -> str:
    return next((r["message"] for r in report.get("reasons", []) if r["level"] == Verdict.NO_GO), report["summary"])
