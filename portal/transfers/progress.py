"""What an agent's `progress` object may hold (docs/protocol.md), checked strictly.

Known keys are type-checked; unknown keys pass through untouched (an agent may
send more than the portal reads). A malformed report is refused with the path
of the bad value, never half-applied: the agent's engineer reads the message
in its log and fixes the agent."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone as dt_timezone

from django.utils.dateparse import parse_datetime

from portal.transfers import throughput
from dtn_protocol.states import REPORTED_FILE_OUTCOMES

MAX_FILES_PER_REPORT = 10_000
MAX_EVENTS_PER_REPORT = 1_000
MAX_PATH_LENGTH = 4096
MAX_TEXT_LENGTH = 4000
# Columns are signed 64-bit on every database we run.
MAX_COUNTER = 2**63 - 1
# What is stored as sent, rewritten on every report: the values besides the lists (the command's progress), and
# the network check. The agent's own are a few KiB; the bound keeps an unknown key from growing a row.
MAX_EXTRAS_BYTES = 256 * 1024
MAX_CHECK_BYTES = 256 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_EVENT_KIND = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_COUNTERS = ("bytes", "total_bytes", "files_done", "files_total", "errors", "retries", "resumed_bytes")


class ProgressError(ValueError):
    def __init__(self, where: str, problem: str):
        super().__init__(f"progress.{where}: {problem}")
        self.where = where


@dataclass(frozen=True)
class FileResult:
    path: str
    size: int
    sha256: str
    receiver_sha256: str
    outcome: str
    error: str


@dataclass(frozen=True)
class Event:
    at: datetime
    kind: str
    message: str


@dataclass(frozen=True)
class Progress:
    counters: dict = field(default_factory=dict)  # only the keys the agent sent
    speed: float | None = None
    eta: int | None = None
    has_speed: bool = False
    has_eta: bool = False
    files: tuple[FileResult, ...] = ()
    events: tuple[Event, ...] = ()
    samples: tuple[tuple[float, int], ...] = ()
    network_check: dict | None = None


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _unstorable(value) -> bool:
    # PostgreSQL cannot store U+0000 or an unpaired surrogate (JSON allows
    # "\ud800") in text or jsonb: refuse them anywhere in the report.
    if isinstance(value, str):
        return _UNSTORABLE.search(value) is not None
    if isinstance(value, dict):
        return any(_unstorable(k) or _unstorable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_unstorable(v) for v in value)
    return False


def _encoded_size(value) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def _counter(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNTER:
        raise ProgressError(where, "must be a whole number of at least 0")
    return value


def _text(value, where: str, limit: int, *, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise ProgressError(where, "must be a non-empty string" if required else "must be a string")
    if len(value) > limit:
        raise ProgressError(where, f"must be at most {limit} characters")
    return value


def _sha(value, where: str) -> str:
    text = _text(value, where, 64).lower()
    if text and not _SHA256.match(text):
        raise ProgressError(where, "must be 64 hex digits (SHA-256) or empty")
    return text


def _file(item, where: str) -> FileResult:
    if not isinstance(item, dict):
        raise ProgressError(where, "must be an object")
    outcome = item.get("outcome")
    if outcome not in REPORTED_FILE_OUTCOMES:
        raise ProgressError(f"{where}.outcome", f"must be one of {', '.join(REPORTED_FILE_OUTCOMES)}")
    path = _text(item.get("path"), f"{where}.path", MAX_PATH_LENGTH, required=True)
    # The path also names the file at the receiver, which hashes it: it must stay inside the transfer.
    if path.startswith("/") or ".." in path.split("/"):
        raise ProgressError(f"{where}.path", "must be relative to the send folder, without '..'")
    return FileResult(
        path=path,
        size=_counter(item.get("size", 0), f"{where}.size"),
        sha256=_sha(item.get("sha256"), f"{where}.sha256"),
        receiver_sha256=_sha(item.get("receiver_sha256"), f"{where}.receiver_sha256"),
        outcome=outcome,
        error=_text(item.get("error"), f"{where}.error", MAX_TEXT_LENGTH),
    )


def _event(item, where: str) -> Event:
    if not isinstance(item, dict):
        raise ProgressError(where, "must be an object")
    raw_at = item.get("at")
    at = parse_datetime(raw_at) if isinstance(raw_at, str) else None
    if at is None:
        raise ProgressError(f"{where}.at", "must be an ISO 8601 date and time")
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt_timezone.utc)
    kind = item.get("kind")
    if not isinstance(kind, str) or not _EVENT_KIND.match(kind):
        raise ProgressError(f"{where}.kind", "must be a lower-case word (letters, digits, _), at most 40 long")
    return Event(at=at, kind=kind, message=_text(item.get("message"), f"{where}.message", MAX_TEXT_LENGTH))


def _number_or_null(value, where: str, *, whole: bool):
    if value is None:
        return None
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < 0 or value > MAX_COUNTER:
        raise ProgressError(where, "must be a number of at least 0, or null")
    return value


def parse(progress) -> Progress:
    if not isinstance(progress, dict):
        raise ProgressError("", "must be an object")
    if _unstorable(progress):
        raise ProgressError("", "must not contain NUL characters or unpaired surrogates")
    counters = {key: _counter(progress[key], key) for key in _COUNTERS if key in progress}
    files = progress.get("files", [])
    if not isinstance(files, list) or len(files) > MAX_FILES_PER_REPORT:
        raise ProgressError("files", f"must be a list of at most {MAX_FILES_PER_REPORT} results")
    events = progress.get("events", [])
    if not isinstance(events, list) or len(events) > MAX_EVENTS_PER_REPORT:
        raise ProgressError("events", f"must be a list of at most {MAX_EVENTS_PER_REPORT} events")
    try:
        samples = throughput.parse_samples(progress.get("samples"))
    except throughput.SampleError as exc:
        raise ProgressError("samples", str(exc)) from None
    check = progress.get("network_check")
    if check is not None and not isinstance(check, dict):
        raise ProgressError("network_check", "must be an object (the agent's network check report)")
    if check is not None and _encoded_size(check) > MAX_CHECK_BYTES:
        raise ProgressError("network_check", f"must be at most {MAX_CHECK_BYTES} bytes of JSON")
    if _encoded_size(without_lists(progress)) > MAX_EXTRAS_BYTES:
        raise ProgressError("", f"the values besides {', '.join(LISTS)} must be at most {MAX_EXTRAS_BYTES} bytes"
                                " of JSON together")
    _text(progress.get("last_error"), "last_error", MAX_TEXT_LENGTH)
    speed = _number_or_null(progress.get("speed"), "speed", whole=False)
    eta = _number_or_null(progress.get("eta"), "eta", whole=True)
    return Progress(
        counters=counters,
        speed=float(speed) if speed is not None else None,
        eta=eta,
        has_speed="speed" in progress,
        has_eta="eta" in progress,
        files=tuple(_file(item, f"files[{i}]") for i, item in enumerate(files)),
        events=tuple(_event(item, f"events[{i}]") for i, item in enumerate(events)),
        samples=tuple(samples),
        network_check=check,
    )


def without_lists(progress: dict) -> dict:
    """The progress kept on the command: counters only. Files and events go to
    the transfer's own tables; keeping them here would rewrite a growing blob
    on every report."""
    return {key: value for key, value in progress.items() if key not in LISTS}


# Kept elsewhere: files and events in their tables, samples in the transfer's series, the check in its own row.
LISTS = ("files", "events", "samples", "network_check")
