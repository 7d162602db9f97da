"""Receiver-side verification: the bytes are checked where they landed.

For a receiver the portal manages, the portal asks the receiver agent (side
channel, `verify_received`) for the SHA-256 of exactly this transfer's files
under its receive folder, and records them beside the sender's. It asks as the
files land: whenever the sender has reported enough of them sent and hashed
(BATCH_FILES or BATCH_BYTES) — so a folder of 10,000 files is mostly verified by
the time its last file lands — and for the rest when the sender, having copied
and hashed everything, reports the phase `verifying`. It then answers the
sender's reports with the verdict; the sender finishes the command as succeeded,
or failed with `checksum_mismatch` naming the files.

A hand-entered S3 endpoint has no agent to ask: rclone's own hash checks are
all there is, and the verdict says so."""

from __future__ import annotations

import re
from datetime import timedelta

from django.db.models import F, Q
from django.utils import timezone

from dtn_protocol.states import Verification
from dtn_protocol.tasks import TaskKind
from portal.containers import tasks
from portal.containers.models import AgentTask, TaskState
from portal.transfers.choices import DestinationKind, FileOutcome
from portal.transfers import recording
from portal.transfers.models import Command, Transfer, TransferFile
from portal.transfers.progress import FileResult

# The receiver's own kind: a container that both sends and receives answers
# verify_files over its send folder and verify_received over its receive folder.
RECEIVER_TASK = TaskKind.VERIFY_RECEIVED
FILES_PER_TASK = 1000
# During a transfer, the receiver is asked once this many files (or bytes) are ready to verify.
BATCH_FILES = 500
BATCH_BYTES = 512 * 1024 * 1024
# Reading what landed runs at disk speed; leave room for a slow disk and a queue.
SECONDS_PER_GIB = 30
NAMED_IN_VERDICT = 20


def applies(transfer: Transfer) -> bool:
    return transfer.verify_checksums and transfer.destination_kind == DestinationKind.CONTAINER


def _landed_path(transfer: Transfer, path: str) -> str:
    """Where a file sits under the receiver's receive folder."""
    return "/".join(part for part in (transfer.bucket, transfer.prefix, path) if part)


def _this_claims_tasks(command: Command):
    # A command re-queued by the reaper and claimed again asks afresh: the tasks
    # (and answers) of an earlier lease say nothing about this one.
    tasks_ = AgentTask.objects.filter(command=command, kind=RECEIVER_TASK)
    return tasks_.filter(created_at__gte=command.claimed_at) if command.claimed_at else tasks_


def request(transfer: Transfer, command: Command, *, final: bool) -> None:
    """Ask the receiver for the checksums of this claim's files it has not been asked about yet: during
    the transfer (`final` False) once a batch of sent and hashed files is ready, at the end for the rest.
    A repeated report asks nothing again."""
    if not applies(transfer) or transfer.receiver is None:
        return
    landed = TransferFile.objects.filter(transfer=transfer, outcome__in=(FileOutcome.SENT, FileOutcome.SKIPPED))
    ready = landed if final else landed.exclude(sha256="")
    # Never asked, or asked before this lease (a command re-queued and claimed again asks afresh: what an
    # earlier lease asked says nothing now). One query each, so each is a range of the (transfer,
    # verify_asked_at) index: on every report, the files not yet asked, not every file of the transfer.
    since = command.claimed_at
    fresh = [ready.filter(verify_asked_at__isnull=True)] + ([ready.filter(verify_asked_at__lt=since)] if since else [])
    rows = sorted(row for part in fresh for row in part.order_by().values_list("pk", "path", "size"))
    if not final and len(rows) < BATCH_FILES and sum(size for _, _, size in rows) < BATCH_BYTES:
        return
    if rows:
        # One worker at the receiver answers the chunks in turn: each deadline covers those before it.
        gib_so_far = 0.0
        for start in range(0, len(rows), FILES_PER_TASK):
            chunk = rows[start:start + FILES_PER_TASK]
            gib_so_far += sum(size for _, _, size in chunk) / 2**30
            tasks.ask(transfer.receiver, RECEIVER_TASK, {"paths": [_landed_path(transfer, p) for _, p, _ in chunk]},
                      command=command, ttl=timedelta(minutes=10) + timedelta(seconds=gib_so_far * SECONDS_PER_GIB))
            # A chunk at a time: the rest at the end may be many (SQLite takes at most 32,766 parameters).
            TransferFile.objects.filter(pk__in=[pk for pk, _, _ in chunk]).update(verify_asked_at=timezone.now())
    if final and (rows or not transfer.events.filter(kind="verification_requested",
                                                      at__gte=since or transfer.created_at).exists()):
        total = landed.count()
        earlier = total - len(rows)
        transfer.log("verification_requested",
                     f"asked the receiver for the SHA-256 of {total} file(s) as they landed"
                     + (f" ({earlier} of them while the transfer ran)" if earlier else ""))


SHA256 = re.compile(r"^[0-9a-f]{64}$")
# How a receiver answers for a file it has not got (agent/paths.py, agent/receiver/minio.py; "not found" an
# S3 store's word).
MISSING_TEXTS = ("does not exist", "not found")
UNREADABLE = "the receiver could not read it"


def record_receiver_answer(task: AgentTask) -> None:
    """Put the receiver's checksums beside the sender's (inside tasks.answer's transaction)."""
    command = task.command
    if command is None:
        return  # asked by no transfer: nothing to record it in
    transfer = Transfer.objects.select_for_update().get(pk=command.transfer_id)
    if command.is_terminal or transfer.latest_command_id != command.pk:
        return  # a late answer for an attempt that is over changes nothing
    if not task.ok:
        transfer.log("verification_failed", f"the receiver could not verify: {task.error}")
        return
    landed_prefix = _landed_path(transfer, "")
    landed_prefix = f"{landed_prefix}/" if landed_prefix else ""
    asked = {path[len(landed_prefix):] for path in task.params.get("paths", []) if path.startswith(landed_prefix)}
    answered = {}
    items = (task.result or {}).get("files", []) if isinstance(task.result, dict) else []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            continue
        path = item["path"]
        if path.startswith(landed_prefix) and path[len(landed_prefix):] in asked:
            answered[path[len(landed_prefix):]] = item
    rows = TransferFile.objects.filter(transfer=transfer, path__in=list(asked))
    recording.merge_files(transfer, [_judged(row, answered.get(row.path)) for row in rows],
                          receiver_hashes_final=True)


def _judged(row: TransferFile, item: dict | None) -> FileResult:
    """A file's outcome from the receiver's evidence: there and equal (as the sender said), missing (no such
    file there, or no answer for it), differs (its SHA-256 is not the sender's), or failed (the receiver
    could not read it, and says why)."""
    digest = item.get("sha256") if item else None
    landed = digest if isinstance(digest, str) and SHA256.match(digest) else ""
    outcome, error = row.outcome, row.error
    if landed:
        if row.sha256 and landed != row.sha256:
            outcome, error = FileOutcome.DIFFERS, "its SHA-256 at the receiver differs from the sender's"
    elif item is None or any(text in str(item.get("error") or "") for text in MISSING_TEXTS):
        outcome, error = FileOutcome.MISSING, "not at the receiver"
    else:
        outcome, error = FileOutcome.FAILED, f"{UNREADABLE}: {item.get('error')}"[:4000]
    return FileResult(path=row.path, size=row.size, sha256=row.sha256, receiver_sha256=landed, outcome=outcome,
                      error=error)


def verdict(transfer: Transfer | None, command: Command) -> dict | None:
    """What the sender is told on each report of the `verifying` phase."""
    if transfer is None:
        return None
    if not applies(transfer):
        return {"state": Verification.NOT_APPLICABLE,
                "message": "no receiver agent to ask; rclone's own hash checks apply"}
    if transfer.receiver is None:
        return {"state": Verification.FAILED,
                "message": "the receiver container was deleted: nothing can verify what landed",
                "files": []}
    asked = list(_this_claims_tasks(command).values("state", "ok", "error", "expires_at"))
    # The landed files with the sender's checksum. Read by the database, never brought into the worker whole:
    # the sender asks on every report of its `verifying` phase, and a transfer may hold a million files.
    checked = TransferFile.objects.filter(transfer=transfer, outcome__in=(FileOutcome.SENT, FileOutcome.SKIPPED)
                                          ).exclude(sha256="")
    if not asked:
        return {"state": Verification.PENDING} if checked.exists() else {"state": Verification.PASSED,
                                                                          "message": "no file to verify"}
    now = timezone.now()
    if any(t["state"] == TaskState.PENDING and t["expires_at"] > now for t in asked):
        return {"state": Verification.PENDING}
    troubles = [t["error"] or "no answer in time" for t in asked if not t["ok"]]
    if troubles:
        return {"state": Verification.FAILED, "message": f"the receiver could not verify: {troubles[0]}", "files": []}
    # What this claim asked about and the receiver judged (a sender's own failed file is not its verdict).
    judged = TransferFile.objects.filter(transfer=transfer, outcome__in=JUDGED).exclude(verify_asked_at=None)
    if command.claimed_at:
        judged = judged.filter(verify_asked_at__gte=command.claimed_at)
    judged = judged.filter(~Q(outcome=FileOutcome.FAILED) | Q(error__startswith=UNREADABLE))
    # The receiver's evidence, file by file: what it has not got, what differs, what it could not read; and a
    # landed file still without the receiver's checksum (never answered for) is not verified either.
    found = {kind: [_named(judged.filter(outcome=kind))] for kind in JUDGED}
    found[FileOutcome.DIFFERS].append(_named(checked.exclude(receiver_sha256=F("sha256"))))
    by_kind = {kind: [path for paths, _ in lists for path in paths] for kind, lists in found.items()}
    counts = {kind: sum(count for _, count in lists) for kind, lists in found.items()}
    named = [path for kind in JUDGED for path in by_kind[kind]]
    if named:
        parts = [f"{WORDS[kind]} for {_some(by_kind[kind], counts[kind])}" for kind in JUDGED if counts[kind]]
        # `missing` apart: a sender whose files are all missing fails as rclone_error, not a checksum mismatch.
        return {"state": Verification.FAILED, "files": named[:NAMED_IN_REPLY],
                "missing": by_kind[FileOutcome.MISSING][:NAMED_IN_REPLY],
                "message": "the receiver's copy is not the sender's: " + "; ".join(parts)}
    return {"state": Verification.PASSED, "message": f"{checked.count()} file(s) match at the receiver"}


# At most this many paths in a verdict's lists.
NAMED_IN_REPLY = 1000


def _named(rows) -> tuple[list[str], int]:
    """The first NAMED_IN_REPLY paths of `rows` by path, and how many there are (counted only past them)."""
    paths = list(rows.order_by("path").values_list("path", flat=True)[:NAMED_IN_REPLY])
    return paths, (len(paths) if len(paths) < NAMED_IN_REPLY else rows.count())


# The receiver's verdicts on single files, in the order the failure message names them.
JUDGED = (FileOutcome.MISSING, FileOutcome.DIFFERS, FileOutcome.FAILED)
WORDS = {FileOutcome.MISSING: "missing at the receiver", FileOutcome.DIFFERS: "SHA-256 differs from the sender's",
         FileOutcome.FAILED: "the receiver could not read it"}


def _some(paths: list[str], count: int) -> str:
    more = f" and {count - NAMED_IN_VERDICT} more" if count > NAMED_IN_VERDICT else ""
    return ", ".join(paths[:NAMED_IN_VERDICT]) + more
