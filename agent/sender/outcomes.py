"""What an attempt says about its files once rclone's jobs are over: a file missing though the job succeeded, the
names refused before sending, the files a stop cut short. Each turns the ledger's per-file evidence into the
transfer's failure (or its rows' plain words), so the attempt itself reads as its sequence of steps."""

from __future__ import annotations

from agent.sender.errors import TransferFailed
from agent.sender.job import NOT_THERE
from agent.sender.ledger import FileEntry, Ledger, entries
from agent.sender.meter import Meter
from dtn_protocol.failures import RCLONE_STOP_TEXT, FailureReason
from dtn_protocol.states import FileOutcome

# What a file's row says instead of rclone's "context canceled".
STOPPED_FILE = "not finished: the transfer was stopped; a restart sends it"
NAMED = 10
EACH_EVENTS = 100


def _named(items: list[FileEntry]) -> str:
    more = f" and {len(items) - NAMED} more" if len(items) > NAMED else ""
    return ", ".join(repr(e.key) for e in items[:NAMED]) + more


def fail_if_missing(plans) -> None:
    """A file rclone's jobs ended without sending (listed nowhere, not at the destination) fails the
    transfer, named, and called what it is: missing at the receiver."""
    missing = [e for e in entries(plans) if e.outcome == FileOutcome.FAILED and e.error.startswith(NOT_THERE)]
    if missing:
        raise TransferFailed(FailureReason.RCLONE_ERROR, f"{len(missing)} file(s) are not at the receiver though"
                             f" rclone's copy ended without error: {_named(missing)} ({missing[0].error})")


def fail_if_refused(refused: list[FileEntry]) -> None:
    """Everything else landed (and was verified); these were never sent, and the transfer says so."""
    if refused:
        raise TransferFailed(FailureReason.NAME_UNSUPPORTED,
                             f"{len(refused)} file(s) not sent, their names cannot land exactly as they are"
                             f" (nothing was renamed): {_named(refused)}. {refused[0].key!r} {refused[0].error}")


def mark_stopped(plans, ledger: Ledger, meter: Meter) -> None:
    """Files whose upload the stop cut short: rclone says "context canceled" for each, which is the stop,
    not a fault of the file. Their rows say so in plain words; rclone's own go to the event log, once."""
    cut = [e for e in entries(plans) if e.outcome == FileOutcome.FAILED and RCLONE_STOP_TEXT in e.error]
    if not cut:
        return
    meter.event("stop_detail", f"rclone, as its jobs were stopped: {cut[0].error}"
                + (f" (and {len(cut) - 1} more files)" if len(cut) > 1 else ""))
    for entry in cut:
        ledger.settle(entry, FileOutcome.FAILED, STOPPED_FILE)


def say_each(meter: Meter, kind: str, lines: list[str]) -> None:
    """One event per item, the first hundred; then how many more (the per-file results name every refused file)."""
    for line in lines[:EACH_EVENTS]:
        meter.event(kind, line)
    if len(lines) > EACH_EVENTS:
        meter.event(kind, f"... and {len(lines) - EACH_EVENTS} more like these")
