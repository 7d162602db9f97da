"""Receiver-side verification: the bytes are checked where they landed.

When the sender has copied everything and hashed what it sent, it reports the
phase `verifying`. For a receiver the portal manages, the portal then asks the
receiver agent (side channel, `verify_files`) for the SHA-256 of exactly this
transfer's files under its receive folder, records them beside the sender's,
and answers the sender's reports with the verdict; the sender finishes the
command as succeeded, or failed with `checksum_mismatch` naming the files.

A hand-entered S3 endpoint has no agent to ask: rclone's own hash checks are
all there is, and the verdict says so."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from portal.agentapi import tasks
from portal.agentapi.models import AgentTask, TaskState
from portal.transfers.choices import DestinationKind, FileOutcome
from portal.transfers.models import Command, Transfer, TransferFile
from portal.transfers.progress import FileResult

VERIFY_PHASE = "verifying"
# The receiver's own kind: a container that both sends and receives answers
# verify_files over its send folder and verify_received over its receive folder.
RECEIVER_TASK = "verify_received"
FILES_PER_TASK = 1000
# Reading what landed runs at disk speed; leave room for a slow disk and a queue.
SECONDS_PER_GIB = 30
NAMED_IN_VERDICT = 20


def applies(transfer: Transfer) -> bool:
    return transfer.verify_checksums and transfer.destination_kind == DestinationKind.CONTAINER


def _landed_path(transfer: Transfer, path: str) -> str:
    """Where a file sits under the receiver's receive folder."""
    return "/".join(part for part in (transfer.bucket, transfer.prefix, path) if part)


def request(transfer: Transfer, command: Command) -> None:
    """Ask the receiver for its checksums once per command (a repeated report asks nothing)."""
    if not applies(transfer) or transfer.receiver is None:
        return
    if AgentTask.objects.filter(command=command, kind=RECEIVER_TASK).exists():
        return
    rows = list(TransferFile.objects.filter(transfer=transfer, outcome__in=(FileOutcome.SENT, FileOutcome.SKIPPED))
                .values_list("path", "size"))
    for start in range(0, len(rows), FILES_PER_TASK):
        chunk = rows[start:start + FILES_PER_TASK]
        gib = sum(size for _, size in chunk) / 2**30
        tasks.ask(transfer.receiver, RECEIVER_TASK, {"paths": [_landed_path(transfer, p) for p, _ in chunk]},
                  command=command, ttl=timedelta(minutes=10) + timedelta(seconds=gib * SECONDS_PER_GIB))
    transfer.log("verification_requested",
                 f"asked the receiver for the SHA-256 of {len(rows)} file(s) as they landed")


def record_receiver_answer(task: AgentTask) -> None:
    """Put the receiver's checksums beside the sender's (inside tasks.answer's transaction)."""
    command = task.command
    transfer = Transfer.objects.select_for_update().get(pk=command.transfer_id)
    if not task.ok:
        transfer.log("verification_failed", f"the receiver could not verify: {task.error}")
        return
    landed_prefix = _landed_path(transfer, "")
    landed_prefix = f"{landed_prefix}/" if landed_prefix else ""
    by_path = {}
    for item in (task.result or {}).get("files", []):
        path = str(item.get("path", ""))
        if path.startswith(landed_prefix):
            by_path[path[len(landed_prefix):]] = item
    rows = TransferFile.objects.filter(transfer=transfer, path__in=list(by_path))
    results = [FileResult(path=row.path, size=row.size, sha256=row.sha256,
                          receiver_sha256=str(by_path[row.path].get("sha256") or ""),
                          outcome=row.outcome, error=row.error) for row in rows]
    transfer.merge_files(results)


def verdict(transfer: Transfer | None, command: Command) -> dict | None:
    """What the sender is told on each report of the `verifying` phase."""
    if transfer is None:
        return None
    if not applies(transfer):
        return {"state": "not_applicable",
                "message": "no receiver agent to ask; rclone's own hash checks apply"}
    asked = list(AgentTask.objects.filter(command=command, kind=RECEIVER_TASK)
                 .values("state", "ok", "error", "expires_at"))
    if not asked:
        return {"state": "not_requested"}
    now = timezone.now()
    if any(t["state"] == TaskState.PENDING and t["expires_at"] > now for t in asked):
        return {"state": "pending"}
    troubles = [t["error"] or "no answer in time" for t in asked if not t["ok"]]
    if troubles:
        return {"state": "failed", "message": f"the receiver could not verify: {troubles[0]}", "files": []}
    checked = list(TransferFile.objects.filter(transfer=transfer, outcome__in=(FileOutcome.SENT, FileOutcome.SKIPPED))
                   .exclude(sha256="").values_list("path", "sha256", "receiver_sha256"))
    # A file the receiver could not read has no checksum there: a mismatch too.
    mismatched = [path for path, sent, landed in checked if sent != landed]
    if mismatched:
        named = ", ".join(mismatched[:NAMED_IN_VERDICT])
        more = f" and {len(mismatched) - NAMED_IN_VERDICT} more" if len(mismatched) > NAMED_IN_VERDICT else ""
        return {"state": "failed", "files": mismatched[:1000],
                "message": f"SHA-256 at the receiver differs from the sender's for {named}{more}"}
    return {"state": "passed", "message": f"{len(checked)} file(s) match at the receiver"}
