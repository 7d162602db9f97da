"""Network checks: asked for on demand through the side channel, or reported by
the sender's agent with the transfer it started (docs/network-check.md).

The agent measures (agent/netcheck/); the portal keeps what it reported,
checked for shape and size, and shows it. Keys reach the agent only in the
task's offer, for the container that runs it, never in the stored task."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from dtn_protocol.failures import FailureReason
from dtn_protocol.tasks import TaskKind
from portal.containers import tasks as agent_tasks
from portal.containers.models import AgentTask, Container
from portal.grants.models import Grant
from portal.lib.errors import Refused
from portal.netcheck.models import CheckState, NetworkCheck, Verdict
from portal.transfers import throughput

log = logging.getLogger(__name__)

KIND = TaskKind.NETWORK_CHECK
# A check takes ~15 s on the agent; it has this long to be taken and answered.
TASK_TTL = timedelta(seconds=90)
MAX_RESULT_BYTES = 64 * 1024
MAX_TOTAL_BYTES = 2**62


class CheckRefused(Refused):
    pass


def start(owner, sender_id, receiver_id, *, total_bytes: int | None = None, files: int | None = None) -> NetworkCheck:
    """A check of the path from one of your senders to a receiver you may send to."""
    sender = Container.objects.own_senders(owner).filter(pk=sender_id).first()
    if sender is None:
        raise CheckRefused("sender", "You have no sender container with that ID.")
    if not sender.online:
        raise CheckRefused("sender", f"The sender '{sender.name}' is offline: its agent must run to check the network.")
    grant = Grant.objects.grant_for(owner, receiver_id)
    if total_bytes is not None and not 0 <= total_bytes <= MAX_TOTAL_BYTES:
        raise CheckRefused("total_bytes", "total_bytes must be a size in bytes, at least 0.")
    if files is not None and not 1 <= files <= 10**9:
        raise CheckRefused("files", "files must be between 1 and 1,000,000,000.")
    with transaction.atomic():
        check = NetworkCheck.objects.create(owner=owner, sender=sender, receiver=grant.receiver, grant=grant,
                                            endpoint=grant.receiver.endpoint,
                                            total_bytes=total_bytes, files=files)
        check.task = agent_tasks.ask(sender, KIND, {"check_id": str(check.pk)}, user=owner, ttl=TASK_TTL)
        check.save(update_fields=["task"])
    return check


def offer_params(task: AgentTask) -> dict:
    """The task as the agent gets it: the destination with the grant's keys, looked up now."""
    check = NetworkCheck.objects.select_related("grant__receiver").filter(task=task).first()
    if check is None or check.grant is None or not check.grant.is_active:
        # The agent refuses a check without a destination, and that answer is recorded.
        return {"check_id": task.params.get("check_id"), "destination": None}
    return {"check_id": str(check.pk), "total_bytes": check.total_bytes, "files": check.files,
            "destination": check.grant.destination()}


def on_answer(task: AgentTask) -> None:
    check = NetworkCheck.objects.select_for_update().filter(task=task).first()
    if check is None or check.state != CheckState.PENDING:
        return
    if task.ok:
        _apply(check, task.result)
    else:
        check.state, check.error = CheckState.FAILED, (task.error or "the agent could not run the check")[:4000]
    check.finished_at = timezone.now()
    check.save()


def refresh(check: NetworkCheck) -> NetworkCheck:
    """A pending check whose task ran out of time is expired (seen where it is read)."""
    if check.state == CheckState.PENDING and check.task_id is not None:
        if check.task.overdue:
            NetworkCheck.objects.filter(pk=check.pk, state=CheckState.PENDING).update(
                state=CheckState.EXPIRED, finished_at=timezone.now(),
                error="the sender's agent did not answer in time")
            check.refresh_from_db()
    return check


def record_for_transfer(transfer, command, report) -> NetworkCheck | None:
    """The check the agent ran at the start of this attempt; a report sent twice is one check."""
    if not isinstance(report, dict):
        return None
    check = NetworkCheck.objects.filter(transfer=transfer, command=command).first()
    if check is None:
        check = NetworkCheck(owner=transfer.owner, sender_id=transfer.sender_id, receiver_id=transfer.receiver_id,
                             grant_id=transfer.grant_id, transfer=transfer, command=command,
                             endpoint=transfer.endpoint[:255], total_bytes=transfer.bytes_total or None,
                             files=transfer.files_total or None)
    _apply(check, report)
    check.finished_at = timezone.now()
    check.save()
    transfer.network_check = check
    throughput.set_reference(transfer, check.result)
    transfer.save(update_fields=["network_check", "throughput"])
    return check


def _apply(check: NetworkCheck, report) -> None:
    problem = _problem(report)
    if problem:
        check.state, check.error = CheckState.FAILED, f"the agent's report was not usable: {problem}"
        return
    check.state = CheckState.DONE
    check.verdict = report["verdict"]
    check.reason = report.get("reason") or ""
    check.summary = str(report.get("summary") or "")[:4000]
    check.result = report
    endpoint = report.get("endpoint")
    if isinstance(endpoint, str) and endpoint:
        check.endpoint = endpoint[:255]


def _problem(report) -> str:
    if not isinstance(report, dict):
        return "not an object"
    if report.get("verdict") not in Verdict.values:
        return f"verdict must be one of {', '.join(Verdict.values)}"
    reason = report.get("reason") or ""
    if reason and reason not in FailureReason.__members__.values():
        return "reason is not from the list of failure reasons"
    if report["verdict"] == Verdict.NO_GO and not reason:
        return "a no-go needs a reason"
    if len(json.dumps(report)) > MAX_RESULT_BYTES:
        return f"larger than {MAX_RESULT_BYTES} bytes"
    return ""
