"""Running one `transfer` command with rclone (docs/protocol.md, docs/agent.md).

The steps: check the sources against the send folder, list them, pin the
receiver's certificate, check the receiver answers and takes the keys
(retrying an unreachable one), set the bandwidth limit, then one rclone job
per source: `sync/copy` for a folder, `operations/copyfile` for a file. While
a job runs the agent polls rclone, reports progress, and stops the job when the
portal's reply asks. Each file sent is hashed (SHA-256) here and reported, so
the portal can compare it with what the receiver holds.

rclone is the only thing that touches the receiver; the receiver's keys go to
rclone inside each call's JSON body, as an inline remote, and never to a file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import ssl
import stat
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Protocol
from urllib.parse import urlsplit

from agent import logs, netcheck, paths, tuning
from agent.failures import classify
from agent.portal import PortalError, ReportReply
from agent.rclone import JobNotFound, RcClient, RcError, RcUnavailable
from dtn_protocol.endpoints import Destination as DestinationKind
from dtn_protocol.endpoints import EndpointRefused, Rule, check_receiver, resolve
from dtn_protocol.failures import FailureReason
from dtn_protocol.netcheck import Verdict
from dtn_protocol.options import (
    DEFAULT_CHECK_MODE, DEFAULT_OVERWRITE, TUNING_BOUNDS, CheckMode, Overwrite, limit_bytes_per_s,
)
from dtn_protocol.states import VERIFIED_ENOUGH, CommandState, FileOutcome, Phase, Verification
from dtn_protocol.units import human_bytes, human_speed

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25
STOP_WAIT_SECONDS = 4.0
RCLONE_COMEBACK_SECONDS = 60.0
MAX_JOB_RESTARTS = 3
MAX_FILES_PER_REPORT = 2000
MAX_TRANSFERRING_SHOWN = 20
# Throughput samples kept for the next report (one a second; the portal keeps the series).
SAMPLE_SECONDS = 1.0
# The speed and ETA a person sees: bytes over the last few seconds (at least half a second of them).
SPEED_WINDOW_SECONDS = 5.0
SPEED_MIN_SPAN_SECONDS = 0.5
MAX_SAMPLES_PER_REPORT = 120
_BWLIMIT = re.compile(r"^\d+(\.\d+)?[BKMGTPbkmgtp]?i?$")
# A probe path that cannot exist: statting it costs one HEAD and one tiny listing,
# and answers whether the receiver is there and takes the keys.
PROBE_REMOTE = ".dtn-probe/none"
PROBE_CONFIG = {"ConnectTimeout": "5s", "Timeout": "15s", "LowLevelRetries": 1}
VERIFY_FIRST_POLL_SECONDS = 0.1
RESEND_NOTE = ("files already at the destination are not sent again; a file interrupted mid-way is sent again"
               " from its start (rclone cannot resume a multipart upload)")


class TransferFailed(Exception):
    def __init__(self, reason: FailureReason, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


class Canceled(Exception):
    """The portal asked to stop this command."""


class Interrupted(Exception):
    """The agent is shutting down: the command stays leased and resumes later."""


class Channel(Protocol):
    """What the runner needs from the controller."""

    stopping: bool

    def report(self, progress: dict) -> ReportReply | None:
        """Send a `running` report; None when the portal could not be reached this time."""

    def tick(self) -> None:
        """Called often: the controller's chance to heartbeat during a long transfer."""


@dataclass
class Outcome:
    state: CommandState | None  # None: leave the command leased; this agent (restarted) resumes it
    reason: str = ""
    message: str = ""
    progress: dict = field(default_factory=dict)


# --- what the command says ---------------------------------------------------

@dataclass(frozen=True)
class Destination:
    endpoint: str
    bucket: str
    prefix: str
    access_key: str
    secret_key: str = field(repr=False)
    tls: bool
    certificate_pem: str | None
    certificate_sha256: str | None
    free_bytes: int | None = None
    # A receiver through a grant (the endpoint rule applies), or an S3 endpoint its sender's owner typed.
    kind: str = DestinationKind.RECEIVER

    @property
    def host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.endpoint)
        return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)

    def remote(self, path: str, ca_file: Path | None, params: dict | None = None) -> dict:
        """rclone's inline remote for `bucket/prefix/path`, as a JSON object."""
        root = "/".join(part for part in (self.bucket, self.prefix, path) if part)
        fs = {
            **(params or {}),
            "type": "s3",
            "provider": "Other",
            "endpoint": self.endpoint,
            "access_key_id": self.access_key,
            "secret_access_key": self.secret_key,
            # Without it a file over 256 MiB fails with CreateBucket 409 on `rclone serve s3` (facts.md);
            # the receiver makes the bucket.
            "no_check_bucket": "true",
            # A trailing slash says "directory": rclone then skips probing whether the root is a file.
            "_root": root + "/",
        }
        if ca_file is not None:
            # override.* applies a global option to this remote only: rclone trusts exactly the pinned certificate.
            fs["override.ca_cert"] = str(ca_file)
        return fs


@dataclass(frozen=True)
class Spec:
    command_id: str
    attempt: int
    sources: tuple[str, ...]
    destination: Destination
    verify_checksums: bool
    overwrite: str
    bandwidth_limit: str | None
    resumed: bool
    base_progress: dict
    network_check: str = DEFAULT_CHECK_MODE
    tuning: dict = field(default_factory=dict)


def _fingerprint(value: str) -> str:
    return value.replace(":", "").strip().lower()


class BadDestination(ValueError):
    pass


def parse_destination(dest) -> Destination:
    """The receiver as the portal sends it (a command's or a network check's), checked."""
    if not isinstance(dest, dict):
        raise BadDestination("it names no receiver ('destination' is missing: no endpoint, bucket or keys)")
    for key in ("endpoint", "bucket", "access_key", "secret_key"):
        if not isinstance(dest.get(key), str) or not dest[key]:
            raise BadDestination(f"destination.{key} is missing")
    endpoint = dest["endpoint"].rstrip("/")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadDestination(f"destination.endpoint is not an http(s) URL: {endpoint!r}")
    tls = bool(dest.get("tls", parts.scheme == "https"))
    if tls != (parts.scheme == "https"):
        raise BadDestination(f"destination.tls is {tls} but the endpoint is {parts.scheme}://")
    if "/" in dest["bucket"]:
        raise BadDestination("destination.bucket must not contain '/'")
    prefix = (dest.get("prefix") or "").strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise BadDestination(f"destination.prefix must not have empty, '.' or '..' parts: {prefix!r}")
    fingerprint = dest.get("certificate_sha256") or None
    free = dest.get("free_bytes")
    # A portal too old to say is taken as a receiver's: the stricter reading.
    kind = dest.get("kind") or DestinationKind.RECEIVER
    if kind not in tuple(DestinationKind):
        raise BadDestination(f"destination.kind must be one of {', '.join(DestinationKind)}, not {kind!r}")
    return Destination(endpoint=endpoint, bucket=dest["bucket"], prefix=prefix, access_key=dest["access_key"],
                       secret_key=dest["secret_key"], tls=tls, certificate_pem=dest.get("certificate_pem") or None,
                       certificate_sha256=_fingerprint(fingerprint) if fingerprint else None,
                       free_bytes=free if isinstance(free, int) and not isinstance(free, bool) and free >= 0 else None,
                       kind=DestinationKind(kind))


def check_destination(d: Destination, rule: Rule) -> None:
    """A receiver's address checked again here, before anything connects to it: the portal's rule
    (dtn_protocol.endpoints) with this agent's own settings, the name resolved as it will be
    connected to. A forged or stale record then sends nothing anywhere."""
    if d.kind != DestinationKind.RECEIVER:
        return
    host, _ = d.host_port
    try:
        check_receiver(d.endpoint, rule, pinned=bool(d.certificate_pem), addresses=resolve(host))
    except EndpointRefused as exc:
        raise TransferFailed(FailureReason.DESTINATION_REFUSED, str(exc)) from None


def parse_command(command: dict) -> Spec:
    """The command's payload, checked. A malformed command is the portal's bug: agent_error."""
    def bad(message):
        return TransferFailed(FailureReason.AGENT_ERROR, f"malformed transfer command: {message}")

    payload = command.get("payload") or {}
    sources = payload.get("sources")
    if not isinstance(sources, list) or not sources or not all(isinstance(s, str) for s in sources):
        raise bad("'sources' must be a non-empty list of paths")
    try:
        destination = parse_destination(payload.get("destination"))
    except BadDestination as exc:
        raise bad(str(exc)) from None
    options = payload.get("options") or {}
    overwrite = options.get("overwrite", DEFAULT_OVERWRITE)
    if overwrite not in tuple(Overwrite):
        raise bad(f"options.overwrite must be one of {', '.join(Overwrite)}, not {overwrite!r}")
    limit = options.get("bandwidth_limit") or None
    if limit is not None and (not isinstance(limit, str) or not _BWLIMIT.match(limit.strip())):
        raise bad(f"options.bandwidth_limit is not a rate like '50M': {limit!r}")
    mode = options.get("network_check") or DEFAULT_CHECK_MODE
    if mode not in tuple(CheckMode):
        raise bad(f"options.network_check must be one of {', '.join(CheckMode)}, not {mode!r}")
    overrides = {}
    for name, (low, high) in TUNING_BOUNDS.items():
        value = options.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise bad(f"options.{name} must be a whole number from {low} to {high}, not {value!r}")
        overrides[name] = value
    progress = command.get("progress") or {}
    return Spec(
        command_id=str(command["command_id"]),
        attempt=int(command.get("attempt") or 1),
        sources=tuple(sources),
        destination=destination,
        verify_checksums=bool(options.get("verify_checksums", True)),
        overwrite=overwrite,
        bandwidth_limit=limit.strip() if limit else None,
        resumed=command.get("state") == CommandState.RUNNING or int(command.get("attempt") or 1) > 1,
        # Claimed back by this instance after a restart: the portal still has it running and counts from
        # our last report. A fresh lease (even of a requeued command) counts from zero.
        base_progress=progress if command.get("state") == CommandState.RUNNING and isinstance(progress, dict) else {},
        network_check=mode,
        tuning=overrides,
    )


# --- what rclone's errors mean -----------------------------------------------



# --- the files of one command ------------------------------------------------

@dataclass(eq=False)
class FileEntry:
    key: str  # path relative to the send folder, as the portal names it
    path: Path  # where to read it for hashing
    size: int
    outcome: str | None = None
    error: str = ""
    checked: bool = False  # rclone compared it with the destination (it may still be sent)
    sha256: str = ""
    hash_wanted: bool = False
    hash_error: str = ""
    reported: bool = False

    @property
    def hash_pending(self) -> bool:
        return self.hash_wanted and not (self.sha256 or self.hash_error)

    def result(self) -> dict:
        # A failed file's checksum would vouch for bytes that did not land.
        sha = self.sha256 if self.outcome != FileOutcome.FAILED else ""
        return {"path": self.key, "size": self.size, "sha256": sha, "outcome": self.outcome, "error": self.error}


@dataclass
class SourcePlan:
    index: int
    resolved: paths.Resolved
    files: dict[str, FileEntry]  # rclone's name (relative to the job's source) -> entry

    @property
    def rel(self) -> str:
        return self.resolved.rel


class Ledger:
    """Every file of the command and what became of it, with running totals, so a
    report costs the same for ten files or a million."""

    def __init__(self):
        self.count = 0
        self.total_bytes = 0
        self.done_bytes = 0
        self.counts = dict.fromkeys(FileOutcome, 0)
        self.unreported: dict[int, FileEntry] = {}

    def add(self, entry: FileEntry) -> FileEntry:
        self.count += 1
        self.total_bytes += entry.size
        return entry

    def settle(self, entry: FileEntry, outcome: str, error: str = "") -> None:
        if entry.outcome:
            self.counts[entry.outcome] -= 1
            if entry.outcome != FileOutcome.FAILED:
                self.done_bytes -= entry.size
        entry.outcome, entry.error = outcome, error
        self.counts[outcome] += 1
        if outcome != FileOutcome.FAILED:
            self.done_bytes += entry.size
        # A changed outcome is reported again; the portal keeps the last word per path.
        entry.reported = False
        self.unreported[id(entry)] = entry

    def ready(self, limit: int) -> list[FileEntry]:
        """Unreported files whose checksum, if one is wanted, is known."""
        ready = []
        for entry in list(self.unreported.values()):
            if len(ready) >= limit:
                break
            if entry.hash_pending and entry.outcome != FileOutcome.FAILED:
                continue
            if entry.hash_error and entry.outcome != FileOutcome.FAILED:
                self.settle(entry, FileOutcome.FAILED, entry.hash_error)
            ready.append(entry)
        return ready

    def delivered(self, entries: list[FileEntry]) -> None:
        for entry in entries:
            entry.reported = True
            self.unreported.pop(id(entry), None)


def walk(index: int, resolved: paths.Resolved, ledger: Ledger) -> tuple[SourcePlan, int]:
    """The regular files under a source, as rclone will see them. Symbolic links
    inside a folder are not followed (rclone's default, and a link may lead out of
    the send folder); the count of skipped links is returned."""
    files: dict[str, FileEntry] = {}
    if not resolved.is_dir:
        files[resolved.path.name] = ledger.add(FileEntry(resolved.rel, resolved.path, resolved.path.stat().st_size))
        return SourcePlan(index, resolved, files), 0
    links = 0
    root = resolved.path
    for directory, dirnames, filenames in os.walk(root):
        here = Path(directory)
        for name in list(dirnames):
            if (here / name).is_symlink():
                links += 1
                dirnames.remove(name)
        for name in filenames:
            full = here / name
            try:
                info = full.lstat()
            except OSError:
                continue
            if stat.S_ISLNK(info.st_mode):
                links += 1
                continue
            if not stat.S_ISREG(info.st_mode):
                continue
            inner = full.relative_to(root).as_posix()
            key = f"{resolved.rel}/{inner}" if resolved.rel else inner
            files[inner] = ledger.add(FileEntry(key, full, info.st_size))
    return SourcePlan(index, resolved, files), links


def sha256_of(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class Hasher:
    """One thread computing SHA-256s in the order files are handed in. Files are
    handed in as soon as they are planned, so the checksum of a big file is
    ready about when rclone has sent it (hashlib works outside the GIL)."""

    def __init__(self):
        self._queue: deque[FileEntry] = deque()
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._work, name="sha256", daemon=True)
        self._thread.start()

    def add(self, entry: FileEntry) -> None:
        if entry.hash_wanted:
            return
        entry.hash_wanted = True
        with self._wake:
            self._queue.append(entry)
            self._wake.notify()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._stopped:
                    self._wake.wait()
                if self._stopped:
                    return
                entry = self._queue.popleft()
            try:
                entry.sha256 = sha256_of(entry.path)
            except OSError as exc:
                entry.hash_error = f"could not read it to compute its SHA-256: {exc.strerror}"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class TransferRunner:
    def __init__(self, rc: RcClient, *, send_dir: Path, state_dir: Path, transfers: int = 4,
                 receiver_attempts: int = 3, receiver_retry_seconds: float = 5.0, progress_seconds: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 now: Callable[[], datetime] = _utcnow,
                 tls_fingerprint: Callable[[str, int], str] | None = None,
                 tcp_probe: Callable[[str, int, float], None] | None = None,
                 network_limits: netcheck.Limits = netcheck.Limits(),
                 s3_factory: Callable[..., netcheck.S3] | None = None,
                 tune: bool = True, endpoint_rule: Rule = Rule()):
        self.rc = rc
        self.send_dir = Path(send_dir).resolve()
        self.state_dir = Path(state_dir)
        self.transfers = transfers
        self.receiver_attempts = receiver_attempts
        self.receiver_retry_seconds = receiver_retry_seconds
        self.progress_seconds = progress_seconds
        self.clock, self.sleep, self.now = clock, sleep, now
        self.tls_fingerprint = tls_fingerprint or peer_certificate_sha256
        self.tcp_probe = tcp_probe or netcheck.tcp_connect_to
        self.network_limits = network_limits
        self.s3_factory = s3_factory or minio_s3
        # endpoint -> (clock, probe) of the last full probe, for back-to-back transfers.
        self.probes: dict[str, tuple[float, dict]] = {}
        self.tune = tune
        self.endpoint_rule = endpoint_rule

    def run(self, command: dict, channel: Channel) -> Outcome:
        return _Attempt(self, command, channel).run()


def minio_s3(d: Destination, ca_file: Path | None, pool_size: int) -> netcheck.S3:
    return netcheck.MinioS3(d.endpoint, d.bucket, d.access_key, d.secret_key, tls=d.tls, ca_file=ca_file,
                            pool_size=pool_size)


def pin_certificate(state_dir: Path, d: Destination) -> Path | None:
    """The receiver's certificate as a file for rclone's ca_cert (public data, kept by
    fingerprint), after checking it against the fingerprint the portal pinned."""
    if not d.tls or not d.certificate_pem:
        return None
    try:
        actual = pem_sha256(d.certificate_pem)
    except ValueError:
        raise TransferFailed(FailureReason.CERTIFICATE_MISMATCH,
                             "the receiver's certificate in the command is not a PEM certificate") from None
    if d.certificate_sha256 and actual != d.certificate_sha256:
        raise TransferFailed(FailureReason.CERTIFICATE_MISMATCH,
                             f"the certificate in the command has SHA-256 {actual}, not the pinned"
                             f" {d.certificate_sha256}")
    certs = Path(state_dir) / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    path = certs / f"{actual}.pem"
    if not path.exists():
        tmp = certs / f".{actual}.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_text(d.certificate_pem)
        tmp.replace(path)
    return path


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


def peer_certificate_sha256(host: str, port: int, timeout: float = 10.0) -> str:
    """The SHA-256 of the certificate the server presents (no trust decision here: we compare it)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=timeout) as sock:
        with context.wrap_socket(sock, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    return hashlib.sha256(der).hexdigest()


def pem_sha256(pem: str) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


class _Attempt:
    """One run of one command by this agent process."""

    def __init__(self, runner: TransferRunner, command: dict, channel: Channel):
        self.r = runner
        self.command = command
        self.channel = channel
        self.spec: Spec | None = None
        self.plans: list[SourcePlan] = []
        self.ledger = Ledger()
        self.events: list[dict] = []
        self._event_keys: set[tuple[str, str]] = set()
        self.retries = 0
        # rclone's counters of the jobs that are over; live_stats is the running job's.
        self.done_stats = {"bytes": 0, "transfers": 0, "checks": 0, "errors": 0}
        self.live_stats: dict = {}
        self.job = None
        self.group: str | None = None
        self.groups: list[str] = []
        self.next_report = 0.0
        self.hasher: Hasher | None = None
        self.phase = ""
        self.check_report: dict | None = None
        self.choice: tuning.Choice | None = None
        self.optimizer: tuning.Optimizer | None = None
        self.samples: list[list] = []
        # (clock, bytes sent) at each look at rclone in the last SPEED_WINDOW_SECONDS.
        self.recent: deque[tuple[float, int]] = deque()
        self.next_sample = 0.0
        self.sending_started: float | None = None

    # --- reporting -----------------------------------------------------------

    def event(self, kind: str, message: str) -> None:
        at = self.r.now()
        # The portal keys events by (at, kind): two in one microsecond would be one.
        while (at.isoformat(), kind) in self._event_keys:
            at += timedelta(microseconds=1)
        self._event_keys.add((at.isoformat(), kind))
        self.events.append({"at": at.isoformat(), "kind": kind, "message": message[:4000]})
        log.info("command %s: %s: %s", self.command.get("command_id"), kind, message)

    def entries(self):
        for plan in self.plans:
            yield from plan.files.values()

    def base(self, key: str) -> int:
        value = self.spec.base_progress.get(key, 0) if self.spec else 0
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0

    def snapshot(self, final: bool = False) -> tuple[dict, list[FileEntry], int]:
        """The progress report, with the files and the number of events it carries."""
        live, ledger = self.live_stats, self.ledger
        files = ledger.ready(MAX_FILES_PER_REPORT)
        sent_bytes = self.done_stats["bytes"] + int(live.get("bytes") or 0)
        transferring = live.get("transferring") or []
        done_bytes = ledger.done_bytes + sum(int(t.get("bytes") or 0) for t in transferring)
        speed = self._recent_speed()
        if speed is None:
            speed = float(live.get("speed") or 0.0)
        left = ledger.total_bytes - done_bytes
        eta = 0 if final else (int(left / speed) if speed > 0 and left > 0 else None)
        progress = {
            "bytes": self.base("bytes") + sent_bytes,
            "total_bytes": ledger.total_bytes,
            "files_done": ledger.counts[FileOutcome.SENT] + ledger.counts[FileOutcome.SKIPPED],
            "files_total": ledger.count,
            "errors": self.base("errors") + self.done_stats["errors"] + int(live.get("errors") or 0),
            "retries": self.base("retries") + self.retries,
            "speed": round(speed, 1),
            "eta": eta,
            "files_sent": ledger.counts[FileOutcome.SENT],
            "files_skipped": ledger.counts[FileOutcome.SKIPPED],
            "files_failed": ledger.counts[FileOutcome.FAILED],
            # rclone's own counts for this run of the command: what a restart really sent.
            "rclone": {"bytes": sent_bytes,
                       "transfers": self.done_stats["transfers"] + int(live.get("transfers") or 0),
                       "checks": self.done_stats["checks"] + int(live.get("checks") or 0)},
            "transferring": [{"path": t.get("name", ""), "bytes": int(t.get("bytes") or 0),
                              "size": int(t.get("size") or 0)} for t in transferring[:MAX_TRANSFERRING_SHOWN]],
            "attempt": self.spec.attempt if self.spec else int(self.command.get("attempt") or 1),
            "files": [e.result() for e in files],
            "events": list(self.events),
        }
        if self.phase:
            progress["phase"] = self.phase
        if live.get("lastError"):
            progress["last_error"] = str(live["lastError"])[:500]
        progress["samples"] = self.samples[:MAX_SAMPLES_PER_REPORT]
        if self.check_report is not None:
            progress["network_check"] = self.check_report
        return progress, files, len(self.events)

    def send_progress(self, force: bool = False) -> ReportReply | None:
        """Report if one is due (or `force`); the portal's reply, or None if none went out or got through."""
        if not force and self.r.clock() < self.next_report:
            return None
        self.next_report = self.r.clock() + self.r.progress_seconds
        progress, files, events = self.snapshot()
        reply = self.channel.report(progress)
        if reply is None:
            return None  # not delivered: the files and events go with the next report
        self.ledger.delivered(files)
        del self.events[:events]
        del self.samples[:len(progress["samples"])]
        if "network_check" in progress:
            self.check_report = None  # delivered: the portal keeps it
        if reply.cancel_requested:
            raise Canceled()
        return reply

    def idle(self, seconds: float) -> None:
        """Wait, while keeping the lease, hearing a stop, and noticing shutdown."""
        deadline = self.r.clock() + seconds
        while True:
            self.channel.tick()
            if self.channel.stopping:
                raise Interrupted()
            self.send_progress()
            left = deadline - self.r.clock()
            if left <= 0:
                return
            self.r.sleep(min(POLL_SECONDS, left))

    # --- the run -------------------------------------------------------------

    def run(self) -> Outcome:
        try:
            try:
                self.spec = parse_command(self.command)
                logs.redact(self.spec.destination.secret_key)
                check_destination(self.spec.destination, self.r.endpoint_rule)
                self._plan()
                self.send_progress(force=True)
                ca_file = self._pin_certificate()
                self._preflight(ca_file)
                self._set_bandwidth()
                for plan in self.plans:
                    self._run_source(plan, ca_file)
                self._finish_hashes()
                self._against_prediction()
                if self.spec.verify_checksums:
                    self._verify()
                self.event("complete", f"{self.ledger.count} files at the destination;"
                           f" {self.ledger.counts[FileOutcome.SENT]} sent by this run, {self.ledger.counts[FileOutcome.SKIPPED]}"
                           " were already there")
                return self._outcome(CommandState.SUCCEEDED)
            finally:
                self._cleanup()
        except TransferFailed as failure:
            self.event("fail", f"{failure.reason}: {failure.message}")
            return self._outcome(CommandState.FAILED, failure.reason, failure.message)
        except Canceled:
            self.event("stop", "stopped at the portal's request; a restart sends only what is missing or"
                       " different")
            return self._outcome(CommandState.CANCELED, message="stopped by a person")
        except Interrupted:
            self.event("interrupted", "the agent is shutting down; the command resumes when it starts again: "
                       + RESEND_NOTE)
            return self._outcome(None)
        except RcError as exc:
            self.event("fail", f"rclone_error: {exc.message}")
            return self._outcome(CommandState.FAILED, FailureReason.RCLONE_ERROR, f"rclone refused {exc}")
        except PortalError:
            raise  # the controller's business: a lost lease, a revoked token
        except Exception as exc:
            # A bug here must fail this command, not end the agent and the queue behind it.
            log.exception("command %s: the agent failed", self.command.get("command_id"))
            return self._outcome(CommandState.FAILED, FailureReason.AGENT_ERROR,
                                 f"the agent failed: {type(exc).__name__}: {exc}")

    def _against_prediction(self) -> None:
        if self.sending_started is None or self.choice is None or not self.choice.predicted_seconds:
            return
        took = max(self.r.clock() - self.sending_started, 1e-3)
        sent = self.done_stats["bytes"]
        self.event("performance", f"sent {human_bytes(sent)} in {took:.1f} s ({human_speed(sent / took)}); the"
                   f" network check predicted {self.choice.predicted_seconds:.1f} s"
                   f" ({human_speed(self.choice.predicted_bytes_per_s or 0)}) for all"
                   f" {human_bytes(self.ledger.total_bytes)}")

    def _outcome(self, state, reason="", message="") -> Outcome:
        progress, _, _ = self.snapshot(final=state == CommandState.SUCCEEDED)
        return Outcome(state, str(reason), message, progress)

    def _plan(self) -> None:
        resolved = []
        for raw in self.spec.sources:
            try:
                resolved.append(paths.resolve(self.r.send_dir, raw))
            except paths.PathRefused as refused:
                raise TransferFailed(refused.reason, refused.message) from None
        kept = []
        for i, item in enumerate(resolved):
            # A source inside another (or named twice) is sent once, with the outer one.
            outer = next((k for j, k in enumerate(resolved)
                          if j != i and _inside(item, k) and (k.rel != item.rel or j < i)), None)
            if outer is None:
                kept.append(item)
            else:
                self.event("warning", f"{item.rel or '.'!r} is inside {outer.rel or '.'!r}: it is sent once")
        links = 0
        for index, item in enumerate(kept):
            plan, skipped = walk(index, item, self.ledger)
            self.plans.append(plan)
            links += skipped
        if self.spec.verify_checksums:
            self.hasher = Hasher()
            if self.spec.overwrite == Overwrite.UPDATE_CHANGED:
                # Every file ends up sent or identical at the destination: all get a checksum, start now.
                for entry in self.entries():
                    self.hasher.add(entry)
        d = self.spec.destination
        where = f"{d.endpoint}/{d.bucket}" + (f"/{d.prefix}" if d.prefix else "")
        if self.spec.resumed:
            self.event("resume", f"attempt {self.spec.attempt} resumes the transfer: {RESEND_NOTE}")
        self.event("start", f"{self.ledger.count} files, {self.ledger.total_bytes} bytes to {where}"
                   f" (overwrite: {self.spec.overwrite}, checksums: {'on' if self.spec.verify_checksums else 'off'},"
                   f" bandwidth limit: {self.spec.bandwidth_limit or 'none'})")
        if links:
            self.event("warning", f"{links} symbolic links inside the sources were not followed or sent")

    def _pin_certificate(self) -> Path | None:
        return pin_certificate(self.r.state_dir, self.spec.destination)

    def _preflight(self, ca_file: Path | None) -> None:
        """The network check (docs/network-check.md): an unreachable receiver is tried
        again; a no-go stops the transfer unless the user overrode it. Then the
        tuning, from what the check measured and the files to send, and a last
        word from rclone itself with the remote it will use."""
        d = self.spec.destination
        mode = self.spec.network_check
        started = self.r.clock()
        attempts = self.r.receiver_attempts
        for attempt in range(1, attempts + 1):
            report = self._network_check(ca_file, probe=mode != CheckMode.SKIP)
            if report["reason"] != FailureReason.RECEIVER_UNREACHABLE:
                if attempt > 1:
                    self.event("retry", f"{d.endpoint} answered on attempt {attempt}")
                break
            if attempt < attempts:
                self.retries += 1
                self.event("retry", f"{d.endpoint} did not answer (attempt {attempt} of {attempts}):"
                           f" {_first_no_go(report)}; trying again in {self.r.receiver_retry_seconds:g} s")
                self.idle(self.r.receiver_retry_seconds)
        else:
            raise TransferFailed(FailureReason.RECEIVER_UNREACHABLE,
                                 f"{d.endpoint} did not answer after {attempts} attempts over"
                                 f" {self.r.clock() - started:.0f} s: {_first_no_go(report)}")
        self._choose(report)
        self.event("network_check", report["summary"])
        self.check_report = report
        if report["verdict"] == Verdict.NO_GO:
            reason = FailureReason(report["reason"])
            # Without reachability, the right certificate and working keys nothing can be sent: no override.
            if mode == CheckMode.ENFORCE or reason in (FailureReason.RECEIVER_UNREACHABLE, FailureReason.CERTIFICATE_MISMATCH,
                                               FailureReason.AUTH_FAILED):
                raise TransferFailed(reason, _explain(reason, d, _first_no_go(report)))
            self.event("warning", f"the network check says no-go ({_first_no_go(report)}); going ahead, as the"
                       " user overrode it")
        if ca_file is not None:
            self.event("tls", f"{d.endpoint} presents the pinned certificate"
                              f" (SHA-256 {pem_sha256(d.certificate_pem)[:23]}…); nothing else is trusted")
        # The check spoke S3 through its own client; this asks rclone, with the very remote (pinned
        # certificate, tuning) its jobs will use, so a remote rclone cannot use fails here, by reason.
        try:
            self.rc_call(self.r.rc.stat, d.remote("", ca_file, self._remote_params()), PROBE_REMOTE,
                         config=PROBE_CONFIG)
        except RcError as exc:
            reason = classify(exc.message)
            raise TransferFailed(reason, _explain(reason, d, exc.message)) from None

    def _network_check(self, ca_file: Path | None, probe: bool) -> dict:
        """Run in a thread while this one keeps the lease and hears a stop."""
        result: dict = {}

        endpoint = self.spec.destination.endpoint
        rate = limit_bytes_per_s(self.spec.bandwidth_limit)
        limits = self.r.network_limits.for_transfer(self.ledger.total_bytes, rate)
        earlier = self.r.probes.get(endpoint)
        reuse = None
        if (earlier is not None and not rate and limits.probe_reuse_seconds > 0
                and self.r.clock() - earlier[0] <= limits.probe_reuse_seconds):
            reuse = {**earlier[1], "reused_from_seconds_ago": round(self.r.clock() - earlier[0], 1)}

        def work():
            try:
                result["report"] = run_network_check(
                    self.spec.destination, ca_file, limits=limits, s3_factory=self.r.s3_factory,
                    tcp_probe=self.r.tcp_probe, tls_fingerprint=self.r.tls_fingerprint, probe=probe,
                    total_bytes=self.ledger.total_bytes, files=self.ledger.count, earlier_probe=reuse)
            except BaseException as exc:  # handed to the waiting thread
                result["error"] = exc

        thread = threading.Thread(target=work, name="network-check", daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(POLL_SECONDS)
            if thread.is_alive():
                self.idle(0)
        if "error" in result:
            raise result["error"]
        report = result["report"]
        fresh = report.get("probe")
        # A probe offered for reuse but refused (the path changed) is replaced by the one just made.
        if fresh and "reused_from_seconds_ago" not in fresh and not rate and report["verdict"] != Verdict.NO_GO:
            self.r.probes[endpoint] = (self.r.clock(), fresh)
        elif report["verdict"] == Verdict.NO_GO:
            self.r.probes.pop(endpoint, None)
        return report

    def _choose(self, report: dict) -> None:
        mix = tuning.FileMix.of(e.size for e in self.entries())
        measured = tuning.Measured.from_report(report) if self.r.tune else None
        choice = tuning.choose(measured, mix, self.spec.tuning)
        if measured is None and "transfers" not in self.spec.tuning:
            choice = replace(choice, transfers=self.r.transfers)
        limit = limit_bytes_per_s(self.spec.bandwidth_limit)
        if limit and choice.predicted_seconds is not None and mix.total_bytes / choice.predicted_seconds > limit:
            seconds = round(mix.total_bytes / limit + 1.0, 1)
            choice = replace(choice, predicted_seconds=seconds, predicted_bytes_per_s=round(mix.total_bytes / seconds, 1))
        self.choice = choice
        self.optimizer = tuning.Optimizer(choice, locked="transfers" in self.spec.tuning)
        netcheck.attach_tuning(report, choice)
        why = "; ".join(choice.reasons)
        if choice.overridden:
            why += f"; set by the user: {', '.join(choice.overridden)}"
        self.event("tuning", f"{choice.describe()}: {why}")

    def _remote_params(self) -> dict:
        return self.choice.remote_params() if self.choice is not None and self.r.tune else {}

    def _set_bandwidth(self) -> None:
        # Process-wide in rclone; the agent runs one command at a time, and every
        # command sets it (or "off"), so a limit never outlives its command.
        rate = self.spec.bandwidth_limit or "off"
        try:
            self.rc_call(self.r.rc.bwlimit, rate)
        except RcError as exc:
            raise TransferFailed(FailureReason.RCLONE_ERROR,
                                 f"rclone refused the bandwidth limit {rate!r}: {exc.message}") from None

    def rc_call(self, fn, *args, **kwargs):
        """An rc call that waits for a restarting rclone instead of failing the command."""
        deadline = self.r.clock() + RCLONE_COMEBACK_SECONDS
        while True:
            try:
                return fn(*args, **kwargs)
            except RcUnavailable:
                if self.r.clock() > deadline:
                    raise TransferFailed(FailureReason.RCLONE_ERROR,
                                         f"rclone did not answer for {RCLONE_COMEBACK_SECONDS:.0f} s") from None
                self.idle(1.0)

    # --- one source, one rclone job -------------------------------------------

    def _job_config(self) -> dict:
        config = {"Transfers": self.r.transfers, "ConnectTimeout": "15s"}
        if self.choice is not None:
            config.update(self.choice.job_config() if self.r.tune else {"Transfers": self.choice.transfers})
        if self.spec.verify_checksums:
            config["CheckSum"] = True  # decide what to send by size and hash, not size and time
        if self.spec.overwrite == Overwrite.SKIP_EXISTING:
            config["IgnoreExisting"] = True
        return config

    def _start_job(self, plan: SourcePlan, ca_file: Path | None, segment: int | None = None,
                   only: list[str] | None = None):
        d = self.spec.destination
        self.group = f"dtn-{self.spec.command_id}-{plan.index}" + (f"-{segment}" if segment is not None else "")
        if self.group not in self.groups:
            self.groups.append(self.group)
        # A job of this command may still run in a sidecar rclone from before our restart.
        for call in (self.r.rc.stop_group, self.r.rc.stats_delete):
            try:
                call(self.group)
            except RcError:
                pass
        params = self._remote_params()
        if plan.resolved.is_dir:
            src = {"type": "local", "_root": str(plan.resolved.path)}
            filters = None
            if only is not None:
                # The segment's files, one per line, exactly as named (no comments, no patterns).
                listing = self.r.state_dir / "segments" / f"{self.group}.txt"
                listing.parent.mkdir(parents=True, exist_ok=True)
                listing.write_text("".join(f"{name}\n" for name in only), encoding="utf-8", errors="surrogateescape")
                filters = {"FilesFromRaw": [str(listing)]}
            return self.rc_call(self.r.rc.copy_dir, src, d.remote(plan.rel, ca_file, params), group=self.group,
                                config=self._job_config(), filters=filters)
        src = {"type": "local", "_root": str(plan.resolved.path.parent)}
        return self.rc_call(self.r.rc.copy_file, src, plan.resolved.path.name, d.remote("", ca_file, params), plan.rel,
                            group=self.group, config=self._job_config())

    def _run_source(self, plan: SourcePlan, ca_file: Path | None) -> None:
        if self.sending_started is None:
            self.sending_started = self.r.clock()
        groups = [None]
        names = list(plan.files)
        if plan.resolved.is_dir and self.r.tune and not any("\n" in n or "\r" in n for n in names):
            groups = tuning.segments(names, [plan.files[n].size for n in names],
                                     self.choice.transfers if self.choice is not None else self.r.transfers)
            if len(groups) == 1:
                groups = [None]
        if len(groups) > 1:
            self.event("segments", f"{plan.rel or '.'!r}: {len(names)} files in {len(groups)} segments; the"
                       " concurrency is adjusted between them from what each achieved")
        for number, group in enumerate(groups):
            if group is None:
                self._run_job(plan, ca_file)
                continue
            before = (self.done_stats["bytes"], self.done_stats["errors"], self.r.clock())
            self._run_job(plan, ca_file, number, {name: plan.files[name] for name in group})
            result = tuning.SegmentResult(files=len(group), bytes=self.done_stats["bytes"] - before[0],
                                          seconds=self.r.clock() - before[2],
                                          errors=self.done_stats["errors"] - before[1])
            if number + 1 < len(groups):
                old = self.choice.transfers
                self.choice, why = self.optimizer.next(result)
                self.event("tuning", f"segment {number + 1} of {len(groups)} done ({result.files} files,"
                           f" {human_bytes(result.bytes)} in {result.seconds:.1f} s); segment {number + 2}:"
                           f" {old} -> {self.choice.transfers} files at once: {why}")

    def _run_job(self, plan: SourcePlan, ca_file: Path | None, segment: int | None = None,
                 files: dict[str, FileEntry] | None = None) -> None:
        restarts = 0
        while True:
            self.job = self._start_job(plan, ca_file, segment, list(files) if files is not None else None)
            try:
                status, stats, sent_now = self._watch(plan)
            except _JobLost as lost:
                self.job = None
                self._bank(self.live_stats)
                restarts += 1
                self.retries += 1
                if restarts > MAX_JOB_RESTARTS:
                    raise TransferFailed(FailureReason.RCLONE_ERROR,
                                         f"rclone lost the job {restarts} times ({lost}); giving up") from None
                self.event("retry", f"rclone lost the job ({lost}); starting it again: {RESEND_NOTE}")
                continue
            self.job = None
            self._bank(stats)
            if status.get("success"):
                self._settle(plan, stats, sent_now, files)
                return
            self._fail(plan, status, stats)

    def _bank(self, stats: dict) -> None:
        for key in self.done_stats:
            self.done_stats[key] += int(stats.get(key) or 0)
        self.live_stats = {}

    def _watch(self, plan: SourcePlan) -> tuple[dict, dict, int]:
        seen: set[tuple] = set()
        sent_now = 0
        job = self.job
        while True:
            self.channel.tick()
            try:
                sent_now += self._observe(plan, seen)
                status = self.r.rc.job_status(job.jobid)
                stats = self.r.rc.stats(self.group)
            except (RcUnavailable, JobNotFound) as exc:
                self._wait_for_rclone()
                raise _JobLost(exc.message) from None
            if job.execute_id and status.get("executeId") not in (None, "", job.execute_id):
                raise _JobLost("rclone restarted")
            self.live_stats = stats
            self._sample()
            if status.get("finished"):
                # Files that finished after the listing above.
                sent_now += self._observe(plan, seen)
                return status, stats, sent_now
            if self.channel.stopping:
                self._stop_job()
                self._last_look(plan, seen)
                raise Interrupted()
            try:
                self.send_progress()
            except Canceled:
                self._stop_job()
                self._last_look(plan, seen)
                raise
            self.r.sleep(POLL_SECONDS)

    def _last_look(self, plan: SourcePlan, seen: set) -> None:
        """Files that finished while the job was being stopped are the attempt's too:
        without this a restart finds them there and calls them skipped."""
        try:
            self._observe(plan, seen)
        except RcError as exc:
            log.warning("could not read what rclone finished before the stop: %s", exc.message)

    def _sample(self) -> None:
        """Bytes sent so far by this attempt: at each look for the speed window, once a second for the
        portal's throughput series."""
        now = self.r.clock()
        sent = self.done_stats["bytes"] + int(self.live_stats.get("bytes") or 0)
        self.recent.append((now, sent))
        while now - self.recent[0][0] > SPEED_WINDOW_SECONDS:
            self.recent.popleft()
        if now < self.next_sample:
            return
        self.next_sample = now + SAMPLE_SECONDS
        self.samples.append([round(self.r.now().timestamp(), 3), sent])
        if len(self.samples) > 10 * MAX_SAMPLES_PER_REPORT:
            del self.samples[:len(self.samples) - 10 * MAX_SAMPLES_PER_REPORT]  # the portal was away: keep the newest

    def _recent_speed(self) -> float | None:
        """Bytes/s over the last few seconds of this attempt. rclone's own figure is one job's average and
        starts again from zero with each segment's job; None until half a second has been seen."""
        if len(self.recent) < 2 or self.recent[-1][0] - self.recent[0][0] < SPEED_MIN_SPAN_SECONDS:
            return None
        (t0, b0), (t1, b1) = self.recent[0], self.recent[-1]
        return max(0.0, (b1 - b0) / (t1 - t0))

    def _wait_for_rclone(self) -> None:
        deadline = self.r.clock() + RCLONE_COMEBACK_SECONDS
        while self.r.clock() < deadline:
            try:
                self.r.rc.version()
                return
            except RcError:
                self.idle(1.0)
        raise TransferFailed(FailureReason.RCLONE_ERROR, f"rclone did not answer for {RCLONE_COMEBACK_SECONDS:.0f} s")

    def _stop_job(self) -> None:
        job, self.job = self.job, None
        if job is None:
            return
        try:
            self.r.rc.job_stop(job.jobid)
            deadline = self.r.clock() + STOP_WAIT_SECONDS
            while self.r.clock() < deadline and not self.r.rc.job_status(job.jobid).get("finished"):
                self.r.sleep(0.05)
            self._bank(self.r.rc.stats(self.group))
        except RcError as exc:
            log.warning("could not stop rclone job %s cleanly: %s", job.jobid, exc.message)

    def _observe(self, plan: SourcePlan, seen: set) -> int:
        """Take in rclone's list of finished files. It holds only the last 100, so
        it is read often; what slips through is settled from the counts at the end."""
        sent = 0
        for item in sorted(self.r.rc.transferred(self.group), key=lambda t: t.get("completed_at") or ""):
            marker = (item.get("name"), item.get("what"), item.get("started_at"))
            if marker in seen:
                continue
            seen.add(marker)
            name = item.get("name") or ""
            entry = plan.files.get(name)
            if entry is None:
                if not plan.resolved.is_dir:
                    continue
                # Appeared after our listing: rclone sent it, so it is reported.
                key = f"{plan.rel}/{name}" if plan.rel else name
                entry = plan.files[name] = self.ledger.add(
                    FileEntry(key, plan.resolved.path / name, int(item.get("size") or 0)))
            error = item.get("error") or ""
            if item.get("checked"):
                entry.checked = True
                continue
            if error:
                if entry.outcome != FileOutcome.SENT:
                    self.ledger.settle(entry, FileOutcome.FAILED, error)
                continue
            if entry.outcome != FileOutcome.SENT:
                self.ledger.settle(entry, FileOutcome.SENT)
                sent += 1
                self._hash(entry)
        return sent

    def _hash(self, entry: FileEntry) -> None:
        # Under skip_existing a skipped file's destination copy is not ours: no checksum to compare.
        if entry.outcome == FileOutcome.SKIPPED and self.spec.overwrite == Overwrite.SKIP_EXISTING:
            return
        if self.hasher is not None:
            self.hasher.add(entry)

    def _settle(self, plan: SourcePlan, stats: dict, sent_now: int, files: dict | None = None) -> None:
        """A successful job: every file is at the destination. Those whose line in
        rclone's list was missed are told apart by rclone's transfer count."""
        transfers = int(stats.get("transfers") or 0)
        open_ = [e for e in (files if files is not None else plan.files).values() if e.outcome in (None, FileOutcome.FAILED)]
        if not plan.resolved.is_dir:
            sent_set = open_ if transfers > 0 else []
        else:
            unseen = [e for e in open_ if not e.checked]
            missing_sent = transfers - sent_now
            if missing_sent <= 0:
                sent_set = []
            elif missing_sent >= len(open_):
                sent_set = open_
            else:
                # Files rclone only compared were already there; the unseen ones hold the rest.
                sent_set = unseen
                if missing_sent != len(unseen):
                    self.event("warning", f"{len(open_)} files finished faster than the agent could list them;"
                               f" {missing_sent} of them were sent and the others were already there, but"
                               " which is which is inferred")
        chosen = {id(e) for e in sent_set}
        for e in open_:
            self.ledger.settle(e, FileOutcome.SENT if id(e) in chosen else FileOutcome.SKIPPED)
            self._hash(e)

    def _fail(self, plan: SourcePlan, status: dict, stats: dict) -> None:
        failed = [e for e in plan.files.values() if e.outcome == FileOutcome.FAILED]
        texts = [status.get("error") or "", stats.get("lastError") or ""] + [e.error for e in failed]
        reasons = [classify(t) for t in texts if t]
        reason = next((r for r in reasons if r != FailureReason.RCLONE_ERROR), FailureReason.RCLONE_ERROR)
        detail = status.get("error") or stats.get("lastError") or "rclone reported a failure"
        if reason == FailureReason.CHECKSUM_MISMATCH:
            bad = [e.key for e in failed if classify(e.error) == FailureReason.CHECKSUM_MISMATCH]
            detail = "the receiver's copy differs from the source for: " + ", ".join(bad[:50])
        message = _explain(reason, self.spec.destination, detail)
        if failed and reason != FailureReason.CHECKSUM_MISMATCH:
            message += f" ({len(failed)} files failed, e.g. {failed[0].key})"
        raise TransferFailed(reason, message)

    def _finish_hashes(self) -> None:
        for e in self.entries():
            # Hashing runs beside the transfer; the last files' checksums may still be coming.
            while e.outcome in (FileOutcome.SENT, FileOutcome.SKIPPED) and e.hash_pending:
                self.channel.tick()
                self.send_progress()
                self.r.sleep(0.05)
            if e.hash_error:
                raise TransferFailed(FailureReason.AGENT_ERROR, f"{e.key}: {e.hash_error}")

    def _verify(self) -> None:
        """Everything is sent and hashed: report the `verifying` phase until the portal
        has the receiver's SHA-256 of what landed and answers with its verdict."""
        self.phase = Phase.VERIFYING
        self.event("verifying", "every file is at the receiver; waiting for its SHA-256 of what landed")
        # The receiver usually answers within a second: ask often at first, then at the report interval,
        # so the verdict does not wait a whole interval.
        wait = VERIFY_FIRST_POLL_SECONDS
        while True:
            self.channel.tick()
            if self.channel.stopping:
                raise Interrupted()
            reply = self.send_progress(force=True)
            if reply is not None:
                verdict = reply.verification or {}
                state = verdict.get("state")
                if state is None or state in VERIFIED_ENOUGH:
                    # No verdict at all: a portal without receiver-side verification.
                    self.event("verification", f"{state or 'not_applicable'}: {verdict.get('message', '')}".rstrip(": "))
                    return
                if state == Verification.FAILED:
                    named = verdict.get("files") or []
                    message = verdict.get("message") or ("SHA-256 at the receiver differs for " + ", ".join(named[:20]))
                    raise TransferFailed(FailureReason.CHECKSUM_MISMATCH, message)
            self.r.sleep(wait)
            wait = min(wait * 1.5, self.r.progress_seconds)

    def _cleanup(self) -> None:
        if self.job is not None:
            self._stop_job()
        if self.hasher is not None:
            self.hasher.stop()
        for group in self.groups:
            try:
                self.r.rc.stats_delete(group)
            except RcError:
                pass
            # A segment's file list is needed only by its job.
            (self.r.state_dir / "segments" / f"{group}.txt").unlink(missing_ok=True)
        if self.spec is not None and self.spec.bandwidth_limit:
            try:
                self.r.rc.bwlimit("off")
            except RcError:
                pass


class _JobLost(Exception):
    pass


def _inside(item: paths.Resolved, other: paths.Resolved) -> bool:
    """`item` is `other` or lies under it (by the names the command used)."""
    return item.rel == other.rel or other.rel == "" or item.rel.startswith(other.rel + "/")


def _explain(reason: FailureReason, d: Destination, detail: str) -> str:
    lead = {
        FailureReason.AUTH_FAILED: f"the receiver at {d.endpoint} refused the keys for bucket {d.bucket}",
        FailureReason.CERTIFICATE_MISMATCH: f"the TLS certificate of {d.endpoint} is not the pinned one",
        FailureReason.RECEIVER_FULL: f"the receiver at {d.endpoint} has no space left",
        FailureReason.RECEIVER_UNREACHABLE: f"the receiver at {d.endpoint} did not answer",
        FailureReason.CHECKSUM_MISMATCH: "rclone found a checksum difference",
    }.get(reason, "rclone failed")
    if "NoSuchBucket" in detail:
        lead = f"the receiver has no bucket {d.bucket!r}"
    return f"{lead}: {detail}"


def _first_no_go(report: dict) -> str:
    return next((r["message"] for r in report.get("reasons", []) if r["level"] == Verdict.NO_GO), report["summary"])

