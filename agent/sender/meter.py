"""What a progress report says about one attempt (docs/agent.md, "Progress reports"):
the ledger's counts, rclone's counters over the jobs that ended and the running one,
the speed over the last seconds, a throughput sample a second, and the events. Files,
events and samples go out once: a report that did not get through is folded into the
next one."""

from __future__ import annotations

import logging
from collections import deque
from datetime import datetime, timedelta
from typing import Callable

from agent.sender.ledger import FileEntry, Ledger
from dtn_protocol.states import FileOutcome

log = logging.getLogger(__name__)

MAX_FILES_PER_REPORT = 2000
MAX_TRANSFERRING_SHOWN = 20
# Throughput samples kept for the next report (one a second; the portal keeps the series).
SAMPLE_SECONDS = 1.0
MAX_SAMPLES_PER_REPORT = 120
# The speed and ETA a person sees: bytes over the last few seconds (at least half a second of them).
SPEED_WINDOW_SECONDS = 5.0
SPEED_MIN_SPAN_SECONDS = 0.5
COUNTERS = ("bytes", "transfers", "checks", "errors")


class Meter:
    def __init__(self, ledger: Ledger, *, clock: Callable[[], float], now: Callable[[], datetime],
                 command_id, attempt):
        self.ledger = ledger
        self.clock, self.now = clock, now
        self.command_id = command_id
        self.attempt = attempt  # as the command gave it, until the command is read
        # The portal's counts from this command's last report before a restart of the agent.
        self.base_progress: dict = {}
        self.events: list[dict] = []
        self._event_keys: set[tuple[str, str]] = set()
        self.retries = 0
        # Bytes of large files the receiver held from an earlier command (multipart.py): done, though this
        # command did not move them.
        self.resumed_bytes = 0
        # rclone's counters of the jobs that are over; `live` is the running job's.
        self.done = dict.fromkeys(COUNTERS, 0)
        self.live: dict = {}
        self.phase = ""
        self.check_report: dict | None = None
        self.samples: list[list] = []
        # (clock, bytes sent) at each look at rclone in the last SPEED_WINDOW_SECONDS.
        self.recent: deque[tuple[float, int]] = deque()
        self.next_sample = 0.0

    def event(self, kind: str, message: str) -> None:
        at = self.now()
        # The portal keys events by (at, kind): two in one microsecond would be one.
        while (at.isoformat(), kind) in self._event_keys:
            at += timedelta(microseconds=1)
        self._event_keys.add((at.isoformat(), kind))
        self.events.append({"at": at.isoformat(), "kind": kind, "message": message[:4000]})
        log.info("command %s: %s: %s", self.command_id, kind, message)

    @property
    def sent_bytes(self) -> int:
        """Bytes this attempt's jobs moved so far."""
        return self.done["bytes"] + int(self.live.get("bytes") or 0)

    def look(self, stats: dict) -> None:
        """The running job's counters, as rclone gave them now."""
        self.live = stats
        now = self.clock()
        self.recent.append((now, self.sent_bytes))
        while now - self.recent[0][0] > SPEED_WINDOW_SECONDS:
            self.recent.popleft()
        if now < self.next_sample:
            return
        self.next_sample = now + SAMPLE_SECONDS
        self.samples.append([round(self.now().timestamp(), 3), self.sent_bytes])
        if len(self.samples) > 10 * MAX_SAMPLES_PER_REPORT:
            del self.samples[:len(self.samples) - 10 * MAX_SAMPLES_PER_REPORT]  # the portal was away: keep the newest

    def bank(self, stats: dict) -> None:
        """A job is over: its counters join those of the jobs before it."""
        for key in self.done:
            self.done[key] += int(stats.get(key) or 0)
        self.live = {}

    def snapshot(self, final: bool = False) -> tuple[dict, list[FileEntry], int]:
        """The progress report, with the files and the number of events it carries."""
        live, ledger = self.live, self.ledger
        files = ledger.ready(MAX_FILES_PER_REPORT)
        transferring = live.get("transferring") or []
        done_bytes = ledger.done_bytes + sum(int(t.get("bytes") or 0) for t in transferring)
        speed = self._recent_speed()
        if speed is None:
            speed = float(live.get("speed") or 0.0)
        left = ledger.total_bytes - done_bytes
        eta = 0 if final else (int(left / speed) if speed > 0 and left > 0 else None)
        progress = {
            "bytes": self._base("bytes") + self.sent_bytes,
            "total_bytes": ledger.total_bytes,
            "files_done": ledger.counts[FileOutcome.SENT] + ledger.counts[FileOutcome.SKIPPED],
            "files_total": ledger.count,
            "errors": self._base("errors") + self.done["errors"] + int(live.get("errors") or 0),
            "retries": self._base("retries") + self.retries,
            "resumed_bytes": self._base("resumed_bytes") + self.resumed_bytes,
            "speed": round(speed, 1),
            "eta": eta,
            "files_sent": ledger.counts[FileOutcome.SENT],
            "files_skipped": ledger.counts[FileOutcome.SKIPPED],
            "files_failed": ledger.counts[FileOutcome.FAILED],
            # rclone's own counts for this run of the command: what a restart really sent.
            "rclone": {"bytes": self.sent_bytes,
                       "transfers": self.done["transfers"] + int(live.get("transfers") or 0),
                       "checks": self.done["checks"] + int(live.get("checks") or 0)},
            "transferring": [{"path": t.get("name", ""), "bytes": int(t.get("bytes") or 0),
                              "size": int(t.get("size") or 0)} for t in transferring[:MAX_TRANSFERRING_SHOWN]],
            "attempt": int(self.attempt or 1),
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

    def delivered(self, progress: dict, files: list[FileEntry], events: int) -> None:
        """A report got through: what it carried is not sent again."""
        self.ledger.delivered(files)
        del self.events[:events]
        del self.samples[:len(progress["samples"])]
        if "network_check" in progress:
            self.check_report = None  # the portal keeps it

    def _base(self, key: str) -> int:
        value = self.base_progress.get(key, 0)
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0

    def _recent_speed(self) -> float | None:
        """Bytes/s over the last few seconds of this attempt. rclone's own figure is one job's average and
        starts again from zero with each segment's job; None until half a second has been seen."""
        if len(self.recent) < 2 or self.recent[-1][0] - self.recent[0][0] < SPEED_MIN_SPAN_SECONDS:
            return None
        (t0, b0), (t1, b1) = self.recent[0], self.recent[-1]
        return max(0.0, (b1 - b0) / (t1 - t0))
