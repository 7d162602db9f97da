"""The network check: before a transfer (and on demand), what stands between
this sender and the receiver's S3 endpoint, in plain words, with a verdict.

Steps, each recorded whether it passes or not:
1. the endpoint's name resolves;
2. it accepts TCP connections: several connects timed, min/median/max RTT;
3. TLS: it presents exactly the certificate the portal pinned;
4. S3: the keys work and the bucket is writable (a small object written, read
   back, removed);
5. a bounded throughput probe of timed S3 PUTs: one stream, then several in
   parallel (a few tens of MiB, ~10 s at most);
6. this host's TCP buffer limits and congestion control, against the path's
   bandwidth-delay product, with tuning advice;
7. the receiver's free space against the transfer's size.

The verdict is go, warn or no_go. A no-go names the failure reason from the
closed list (dtn_protocol/failures.py): receiver_unreachable, certificate_mismatch,
auth_failed, receiver_full, or network_no_go for the rest.

The probe talks S3 through the minio SDK (not rclone) so it can time each PUT
and tell the path from rclone's own behaviour; its objects are named
`.dtn-netcheck-<id>-<n>` at the top of the bucket, where no folder is left
behind, and removed afterwards.
"""

from __future__ import annotations

import logging
import math
import os
import re
import socket
import ssl
import statistics
import threading
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Protocol

from agent.failures import classify
from agent.tuning import scales_with_streams
from dtn_protocol.failures import FailureReason
from dtn_protocol.netcheck import Verdict
from dtn_protocol.units import MiB, human_bytes, human_speed

log = logging.getLogger(__name__)

GO, WARN, NO_GO = Verdict.GO, Verdict.WARN, Verdict.NO_GO
# Before a transfer the probe moves at most this share of its bytes, but never less than the minimum
# (fewer bytes say little about a path) in no less than the minimum time.
PROBE_SHARE = 0.03
PROBE_MIN_BYTES = 8 * MiB
PROBE_MIN_SECONDS = 2.0
# ...and never fewer round trips than this (up to PROBE_RTT_CAP_SECONDS): on a 50 ms lossy path a 2 s probe
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


@dataclass(frozen=True)
class Limits:
    """How much a check may cost. The defaults keep it under ~15 s and ~48 MiB."""

    rtt_samples: int = 5
    connect_timeout: float = 5.0
    probe_seconds: float = 10.0
    probe_max_bytes: int = 48 * MiB
    streams: int = 8
    # Below this the path is called slow (bytes/s): 100 Mbit/s.
    slow_bytes_per_s: float = 100e6 / 8
    # A retransmission share above this, with streams held back, is called lossy.
    lossy_retransmit_ratio: float = 0.001
    # A transfer to an endpoint probed this recently reuses that probe (reachability, TLS, keys and space
    # are checked afresh): back-to-back transfers do not each pay seconds of probing. 0: always probe.
    probe_reuse_seconds: float = 600.0

    def for_transfer(self, total_bytes: int | None, bandwidth_limit: float | None = None) -> "Limits":
        """The probe before a transfer costs a small share of it: a 100 MiB transfer is not preceded by 48 MiB
        of probing (on the bench's clean link the full probe alone was 6-7% of a 1 GiB file's time). Its time
        shrinks with its bytes, as the rate is not known before probing. A user's bandwidth limit keeps it to
        about two seconds at that rate."""
        budget = self.probe_max_bytes
        if total_bytes:
            budget = min(budget, max(PROBE_MIN_BYTES, int(total_bytes * PROBE_SHARE)))
        if bandwidth_limit:
            budget = min(budget, max(256 * 1024, int(2 * bandwidth_limit)))
        if budget >= self.probe_max_bytes:
            return self
        seconds = min(self.probe_seconds, max(PROBE_MIN_SECONDS, self.probe_seconds * budget / self.probe_max_bytes))
        return replace(self, probe_max_bytes=budget, probe_seconds=seconds)


class S3Error(Exception):
    """An S3 step failed; `reason` is the closed-list reason it stands for."""

    def __init__(self, reason: FailureReason, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


class S3(Protocol):
    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def remove(self, key: str) -> None: ...


# --- the S3 side, through the minio SDK -------------------------------------------------------

class Payload:
    """`size` bytes of one random block repeated: a PUT of any size streams from it, so the probe's memory
    does not grow with its PUTs or its streams (the agent's peak RSS had reached 76-107 MB with PUTs held
    whole in memory). Random, so nothing on the path can compress it."""

    BLOCK = 1 * MiB

    def __init__(self, block: bytes, size: int):
        self.block, self.size = memoryview(block), size

    def __len__(self) -> int:
        return self.size

    def chunks(self):
        left = self.size
        while left > 0:
            piece = self.block[:min(left, len(self.block))]
            left -= len(piece)
            yield piece

    def __bytes__(self) -> bytes:
        return b"".join(self.chunks())


class MinioS3:
    """put/get/remove on one bucket, errors turned into failure reasons."""

    def __init__(self, endpoint: str, bucket: str, access_key: str, secret_key: str, *, tls: bool,
                 ca_file: Path | None, pool_size: int = 10, timeout: float = 30.0):
        import urllib3
        from minio import Minio
        from urllib.parse import urlsplit

        parts = urlsplit(endpoint)
        kwargs = {}
        if tls and ca_file:
            # One context for every connection: given a CA file, urllib3 builds and loads one per connection.
            kwargs = {"ssl_context": ssl.create_default_context(cafile=str(ca_file))}
        self.http = urllib3.PoolManager(num_pools=2, maxsize=pool_size, retries=False,
                                        timeout=urllib3.Timeout(connect=5.0, read=timeout), **kwargs)
        # The region is given so the SDK does not ask for the bucket's location first.
        self.client = Minio(parts.netloc, access_key=access_key, secret_key=secret_key, secure=tls,
                            region="us-east-1", http_client=self.http)
        self.bucket = bucket
        self.endpoint = endpoint

    def put(self, key: str, data) -> None:
        """A PUT through a presigned URL, its body streamed: the SDK's put_object reads a whole object into
        memory first."""
        def send():
            url = self.client.presigned_put_object(self.bucket, key)
            body = data.chunks() if isinstance(data, Payload) else data
            response = self.http.request("PUT", url, body=body, headers={"Content-Length": str(len(data))},
                                         preload_content=True)
            if response.status >= 300:
                raise _error_from_xml(response.status, response.data.decode("utf-8", "replace"), self.bucket)
        self._call(send)

    def get(self, key: str) -> bytes:
        def read():
            response = self.client.get_object(self.bucket, key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()
        return self._call(read)

    def remove(self, key: str) -> None:
        self._call(lambda: self.client.remove_object(self.bucket, key))

    def close(self) -> None:
        self.http.clear()

    def _call(self, fn):
        from minio.error import InvalidResponseError, MinioException, S3Error as MinioS3Error, ServerError
        import urllib3.exceptions as ux

        try:
            return fn()
        except S3Error:
            raise
        except MinioS3Error as exc:
            raise s3_error(exc.code or "", exc.response.status if exc.response is not None else 0,
                           exc.message or str(exc), self.bucket) from None
        except ServerError as exc:
            raise s3_error("", exc.status_code, str(exc), self.bucket) from None
        except InvalidResponseError as exc:
            # The SDK wants application/xml; rclone's serve s3 answers errors as text/xml.
            text = str(exc)
            status = re.search(r"Response code: (\d{3})", text)
            raise _error_from_xml(int(status.group(1)) if status else 0, text, self.bucket) from None
        except MinioException as exc:
            raise S3Error(FailureReason.NETWORK_NO_GO, f"the S3 client failed: {str(exc)[:300]}") from None
        except ValueError as exc:  # the SDK's own checks, e.g. of the bucket's name
            raise S3Error(FailureReason.NETWORK_NO_GO, f"the S3 client refused: {str(exc)[:300]}") from None
        except ux.SSLError as exc:
            raise S3Error(FailureReason.CERTIFICATE_MISMATCH, f"TLS refused: {exc}") from None
        except ux.MaxRetryError as exc:
            if isinstance(exc.reason, ux.SSLError):
                raise S3Error(FailureReason.CERTIFICATE_MISMATCH, f"TLS refused: {exc.reason}") from None
            raise S3Error(FailureReason.RECEIVER_UNREACHABLE, f"no answer: {exc.reason}") from None
        except (ux.HTTPError, OSError) as exc:
            raise S3Error(FailureReason.RECEIVER_UNREACHABLE, f"no answer: {exc}") from None


def _error_from_xml(status: int, text: str, bucket: str) -> "S3Error":
    """An S3 error answer (its XML body, or the SDK's words around it) as a failure reason."""
    code = re.search(r"<Code>([^<]{1,64})</Code>", text)
    message = re.search(r"<Message>([^<]{0,300})</Message>", text) or re.search("(.{0,200})", text)
    return s3_error(code.group(1) if code else "", status, message.group(1), bucket)


def s3_error(code: str, status: int, message: str, bucket: str) -> S3Error:
    if code == "NoSuchBucket":
        return S3Error(FailureReason.NETWORK_NO_GO, f"the receiver has no bucket {bucket!r}")
    reason = classify(f"{code} StatusCode: {status}", default=FailureReason.NETWORK_NO_GO)
    if reason == FailureReason.AUTH_FAILED:
        return S3Error(reason, f"the receiver refused the keys: {code or status} {message}")
    if reason == FailureReason.RECEIVER_FULL:
        return S3Error(reason, f"the receiver has no space left: {code or status}")
    return S3Error(FailureReason.NETWORK_NO_GO, f"the receiver answered {status} {code}: {message}".strip())


# --- what this host allows --------------------------------------------------------------------

def host_tcp(proc: Path = Path("/proc")) -> dict:
    """TCP buffer limits and congestion control of this host (its network namespace)."""
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
    return {
        "tcp_rmem": triple("sys/net/ipv4/tcp_rmem"),
        "tcp_wmem": triple("sys/net/ipv4/tcp_wmem"),
        "rmem_max": single("sys/net/core/rmem_max"),
        "wmem_max": single("sys/net/core/wmem_max"),
        "congestion_control": read("sys/net/ipv4/tcp_congestion_control"),
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


# --- the check ----------------------------------------------------------------------------------

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
        self.resolve = resolve or _resolve
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
        self.report = {"endpoint": t.endpoint, "reason": "", "probe": None, "rtt_ms": None,
                       "host": host_tcp(self.proc), "total_bytes": total_bytes, "files": files,
                       "free_bytes": free_bytes}
        try:
            addresses = self.resolve(t.host, t.port)
        except OSError as exc:
            return self.no_go(FailureReason.RECEIVER_UNREACHABLE, "unresolvable",
                              f"the name {t.host!r} does not resolve: {exc.strerror or exc}")
        self.report["addresses"] = addresses
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
                self._probe(key)
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

    def _probe(self, key: str) -> None:
        limits = self.limits
        before = tcp_counters(self.proc)
        block = os.urandom(Payload.BLOCK)
        round_trips = min(PROBE_RTT_CAP_SECONDS, PROBE_MIN_ROUND_TRIPS * self.report["rtt_ms"]["median"] / 1000)
        seconds = max(limits.probe_seconds, round_trips)
        # The phases get less than the whole budget: a PUT in flight at a phase's end finishes, and on a
        # slow lossy path that runs over by a few seconds.
        single = self._phase(key, 1, seconds * 0.3, int(limits.probe_max_bytes * 0.35), block, round_trips * 0.3)
        parallel = self._phase(key, limits.streams, seconds * 0.5, int(limits.probe_max_bytes * 0.65), block,
                               round_trips * 0.5)
        after = tcp_counters(self.proc)
        ratio = None
        if before and after and after[0] > before[0]:
            ratio = round((after[1] - before[1]) / (after[0] - before[0]), 5)
        self.report["probe"] = {
            "rtt_median_ms": self.report["rtt_ms"]["median"],
            "congestion_control": self.report["host"].get("congestion_control"),
            "single_stream_bytes_per_s": round(single["rate"], 1),
            "parallel_bytes_per_s": round(parallel["rate"], 1), "streams": limits.streams,
            "bytes": single["bytes"] + parallel["bytes"], "seconds": round(single["seconds"] + parallel["seconds"], 2),
            "retransmit_ratio": ratio,
        }
        if single["rate"] <= 0 and parallel["rate"] <= 0:
            raise S3Error(FailureReason.NETWORK_NO_GO, "the throughput probe moved no data")

    def _phase(self, key: str, streams: int, seconds: float, max_bytes: int, block: bytes,
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
        return {"rate": _steady_rate(started, [r["puts"] for r in results if r]),
                "bytes": sum(r["bytes"] for r in results if r), "seconds": self.clock() - started}

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
        cc = host.get("congestion_control") or "unknown"
        if link < self.limits.slow_bytes_per_s:
            self.finding(WARN, "slow", f"the path carried {human_rate(link)} with {streams} streams, under the"
                         f" {human_rate(self.limits.slow_bytes_per_s)} this check calls fast")
        if lossy:
            self.finding(WARN, "lossy", f"{ratio * 100:.2f}% of TCP segments were sent again during the probe: the"
                         f" path loses packets, and one stream carried only {human_rate(single)}")
            if cc in ("cubic", "reno") and "bbr" in host.get("available_congestion_control", []) + ["bbr"]:
                advice.append(f"This host uses {cc}, which slows down at every loss. On a long lossy path BBR keeps"
                              " its rate (ESnet fasterdata advises it): `sysctl -w net.core.default_qdisc=fq"
                              " net.ipv4.tcp_congestion_control=bbr` on both hosts.")
            advice.append("The agent uses many parallel connections on this path, since each carries little.")
        if per_stream_ceiling and bdp > window and rtt_s >= 0.005:
            want = 1 << max(22, math.ceil(math.log2(2 * bdp)))
            self.finding(WARN, "window_limited", f"one TCP stream can carry at most {human_rate(per_stream_ceiling)}"
                         f" here ({human_bytes(window)} buffers at {rtt['min']:.0f} ms), less than the"
                         f" {human_rate(link)} the path carried")
            advice.append(f"Raise the TCP buffer limits to {want} bytes on both hosts: `sysctl -w"
                          f" net.core.rmem_max={want} net.core.wmem_max={want}"
                          f" net.ipv4.tcp_rmem='4096 87380 {want}' net.ipv4.tcp_wmem='4096 65536 {want}'`.")
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
        if verdict == NO_GO and not report.get("reason"):
            report["reason"] = str(FailureReason.NETWORK_NO_GO)
        if verdict != NO_GO:
            report["reason"] = ""
        report["summary"] = summarise(report)
        return report


def refused(endpoint: str, reason: FailureReason, message: str) -> dict:
    """A no-go found before any step could run (e.g. a certificate that is not one)."""
    report = {"endpoint": endpoint, "verdict": NO_GO, "reason": str(reason), "probe": None, "rtt_ms": None,
              "reasons": [{"level": NO_GO, "code": "refused", "message": message}], "advice": []}
    report["summary"] = summarise(report)
    return report


def _steady_rate(start: float, streams: list[list[tuple[float, float, int]]]) -> float:
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


def attach_tuning(report: dict, choice) -> None:
    """The tuning chosen from this report (agent/tuning.Choice) and its prediction, into the report."""
    report.update(tuning=choice.as_dict(), predicted_seconds=choice.predicted_seconds,
                  predicted_bytes_per_s=choice.predicted_bytes_per_s)
    report["summary"] = summarise(report)


def summarise(report: dict) -> str:
    verdict = report["verdict"]
    reasons = report.get("reasons") or []
    if verdict == NO_GO:
        first = next(r for r in reasons if r["level"] == NO_GO)
        return f"No-go ({report['reason']}): {first['message']}."
    parts = []
    rtt = report.get("rtt_ms")
    if rtt:
        parts.append(f"{report['endpoint']} answers in {rtt['median']:.1f} ms")
    probe = report.get("probe")
    if probe:
        when = (f"the probe of {probe['reused_from_seconds_ago']:.0f} s ago" if probe.get("reused_from_seconds_ago")
                is not None else "the probe")
        parts.append(f"{when} carried {human_rate(probe['single_stream_bytes_per_s'])} on one stream and"
                     f" {human_rate(probe['parallel_bytes_per_s'])} on {probe['streams']}")
    if report.get("predicted_seconds") is not None:
        parts.append(f"predicted: {human_seconds(report['predicted_seconds'])}")
    text = "; ".join(parts)
    if verdict == WARN:
        warns = "; ".join(r["message"] for r in reasons if r["level"] == WARN)
        return f"Warn: {warns}" + (f"; {text}." if text else ".")
    return f"Go: {text}." if text else "Go."


def human_rate(bytes_per_s: float) -> str:
    # A path's rate in the link's own unit (as DTN_NETCHECK_SLOW_MBIT is given), then in bytes.
    return f"{bytes_per_s * 8 / 1e6:.1f} Mbit/s ({human_speed(bytes_per_s)})"


def human_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {(seconds % 3600) // 60} min"


def tcp_connect_to(host: str, port: int, timeout: float = 5.0) -> None:
    """Raises OSError when nothing accepts a connection there."""
    socket.create_connection((host, port), timeout=timeout).close()


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({info[4][0] for info in infos})
