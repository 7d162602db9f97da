"""What an agent's reports add to a transfer's record: its counters, its per-file
results and its event log. Called by the queue (and by receiver verification)
inside the transaction that holds the transfer's row locked."""

from __future__ import annotations

import hashlib

from django.db.models import Sum
from django.utils import timezone

from portal.transfers.choices import FileOutcome
from portal.transfers.models import Transfer, TransferEvent, TransferFile

# Files a report's upsert writes per statement, and looks up per query: an agent reports at most 2,000 per
# report (agent/sender/meter.py), so a report is one SELECT through the unique index and one INSERT ... ON
# CONFLICT on PostgreSQL (2,000 rows x 10 columns stays under its 65,535 parameters; Django splits SQLite's
# INSERT further, to its own 999-parameter limit).
FILES_PER_STATEMENT = 2000

# The transfer's counters that its per-file results make up.
FILE_COUNTERS = ("files_transferred", "files_skipped", "files_failed", "files_verified",
                 "bytes_skipped", "bytes_failed", "bytes_verified")


def path_key(path: str) -> str:
    # Paths can be longer than an index entry may be; their hash is the key.
    return hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()


def begin_lease(transfer: Transfer) -> None:
    """A new lease starts counting from zero: bank what the last one left. Of its bytes, only the files it
    sent count as done (the new lease finds them there); a file it left half-sent is sent again from its
    start, and those bytes are re-sent, not progress; unless it is large enough for the agent's own upload,
    whose parts the receiver holds: the new lease reports those as `resumed_bytes`."""
    sent = TransferFile.objects.filter(transfer=transfer, outcome=FileOutcome.SENT).aggregate(s=Sum("size"))["s"]
    transfer.bytes_before_lease = min(sent or 0, transfer.bytes_transferred)
    transfer.moved_before_lease = transfer.bytes_moved
    transfer.faults_before_lease = transfer.faults
    transfer.save(update_fields=["bytes_before_lease", "moved_before_lease", "faults_before_lease"])


def count_bytes(transfer: Transfer, lease_bytes: int | None, resumed: int | None = None) -> list[str]:
    """The bytes counters from what this lease's rclone moved so far (after the report's files are merged,
    so the skipped bytes are known). Invariants: 0 <= transferred <= total - skipped; a byte of the dataset
    counts once (the done figure never falls back when a restart sends a half-sent file again from its
    start); transferred + resent is every byte moved. `lease_bytes` None: the report left them out, and
    what the lease moved so far stands (its files may still have changed the skipped bytes). `resumed`: bytes
    of large files the receiver held from earlier leases (parts of a resumed upload): done, not moved."""
    if lease_bytes is None:
        lease_bytes = max(0, transfer.bytes_moved - transfer.moved_before_lease)
    moved = transfer.moved_before_lease + lease_bytes
    done = max(transfer.bytes_transferred, transfer.bytes_before_lease + (resumed or 0) + lease_bytes)
    room = max(0, transfer.bytes_total - transfer.bytes_skipped) if transfer.bytes_total else done
    transfer.bytes_transferred = min(done, room)
    transfer.bytes_resent = max(0, moved - transfer.bytes_transferred)
    return ["bytes_transferred", "bytes_resent"]


def record_progress(transfer: Transfer, progress) -> list[str]:
    """Counters from a progress report (portal.transfers.progress.Progress).
    Absolute values, not increments, so a repeated report changes nothing.
    The bytes are counted by count_bytes, once the report's files are in.
    Returns the fields set; the caller saves them with count_bytes' in one UPDATE (a report is the hot path)."""
    counters = progress.counters
    fields = []
    if "total_bytes" in counters:
        transfer.bytes_total = counters["total_bytes"]
        fields.append("bytes_total")
    if "files_total" in counters:
        transfer.files_total = counters["files_total"]
        fields.append("files_total")
    if "retries" in counters:
        transfer.faults = transfer.faults_before_lease + counters["retries"]
        fields.append("faults")
    if progress.has_speed:
        transfer.speed = progress.speed
        fields.append("speed")
    if progress.has_eta:
        transfer.eta = progress.eta
        fields.append("eta")
    return fields


def merge_files(transfer: Transfer, results, *, receiver_hashes_final: bool = False) -> None:
    """Upsert per-file results keyed by path and move the counters by the
    difference each row made (the transfer row is locked by the caller), so
    a report costs the same for the tenth file or the millionth.

    A later attempt's result replaces an earlier one, except that 'skipped'
    does not overwrite 'sent': on a restart the agent finds the file already
    there because an earlier attempt sent it. A checksum already known is
    kept when a later report leaves it out."""
    if not results:
        return
    latest = {}
    for result in results:  # within one report, the last word on a path wins
        latest[result.path] = result
    keys = {path_key(path): path for path in latest}
    existing = {}
    key_list = list(keys)
    for start in range(0, len(key_list), FILES_PER_STATEMENT):
        # (transfer_id, path_key IN (...)): the unique index, a bounded read whatever the transfer holds.
        chunk = key_list[start:start + FILES_PER_STATEMENT]
        # No ORDER BY (the model's default is by path): the rows go into a dict.
        for row in TransferFile.objects.filter(transfer=transfer, path_key__in=chunk).order_by().only(
                "path_key", "size", "sha256", "receiver_sha256", "outcome", "error"):
            existing[row.path_key] = row
    now = timezone.now()
    rows = []
    delta = dict.fromkeys(FILE_COUNTERS, 0)
    for key, path in keys.items():
        new, old = latest[path], existing.get(key)
        row = TransferFile(transfer=transfer, path=path, path_key=key, size=new.size, sha256=new.sha256,
                           receiver_sha256=new.receiver_sha256, outcome=new.outcome, error=new.error,
                           updated_at=now)
        if old is not None:
            if old.outcome == FileOutcome.SENT and new.outcome == FileOutcome.SKIPPED:
                row.outcome, row.size, row.error = old.outcome, old.size, old.error
            row.sha256 = row.sha256 or old.sha256
            if not receiver_hashes_final:
                # The receiver's own answer is final, even when it has no checksum for a file.
                row.receiver_sha256 = row.receiver_sha256 or old.receiver_sha256
            for name, value in old.contribution().items():
                delta[name] -= value
        for name, value in row.contribution().items():
            delta[name] += value
        rows.append(row)
    TransferFile.objects.bulk_create(
        rows, batch_size=FILES_PER_STATEMENT, update_conflicts=True, unique_fields=["transfer", "path_key"],
        update_fields=["path", "size", "sha256", "receiver_sha256", "outcome", "error", "updated_at"])
    changed = [name for name, value in delta.items() if value]
    for name in changed:
        setattr(transfer, name, getattr(transfer, name) + delta[name])
    if changed:
        transfer.save(update_fields=changed)


def add_events(transfer: Transfer, events, source: str = TransferEvent.Source.AGENT) -> None:
    """Append events; one already recorded (same time and kind) is not repeated."""
    TransferEvent.objects.bulk_create(
        [TransferEvent(transfer=transfer, at=e.at, kind=e.kind, message=e.message, source=source) for e in events],
        ignore_conflicts=True)
    for event in events:
        transfer.log_line(event.kind, event.message, source)
