"""The queue's state machine. Every change of a command's state goes through
change_state(), inside a transaction, as a conditional update allowed by the
protocol's TRANSITIONS (dtn_protocol.states): the database, not the calling
code, decides who wins a race, and no caller can invent a change.

A command that is an attempt of a transfer carries its transfer along (carry()):
the transfer's state, counters, per-file results and event log change in the
same transaction as the command. The lease reaper is portal/transfers/reaper.py."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from dtn_protocol.failures import RCLONE_STOP_TEXT, FailureReason
from dtn_protocol.states import (
    LEASED_STATES, REPORTED_STATES, TERMINAL_STATES, CommandKind, CommandState, Phase, may_change,
)
from portal.containers.models import Container
from portal.lib.errors import Refused
from portal.transfers import progress as progress_module
from portal.transfers import recording, throughput, verification
from portal.transfers.models import Command, Transfer
from portal.transfers.signals import network_check_reported

log = logging.getLogger(__name__)


# What a stopped transfer says, whatever rclone said as its jobs were stopped (that is in the event log).
STOPPED_SENTENCE = "Stopped at your request. A restart sends only what is missing or different."


class QueueError(Refused):
    """A request the queue refuses; the message is for the person or agent."""

    status = 409


class NotLeaseHolder(QueueError):
    pass


class IllegalTransition(QueueError):
    pass


def _lease_deadline(now):
    return now + timedelta(seconds=settings.DTN_LEASE_SECONDS)


def change_state(pk, old: str | frozenset, new: str, *, now, where: dict | None = None, **fields) -> int:
    """Change a command from `old` (a state, or any of several) to `new`, with `fields`, if it is
    still there (and matches `where`): one conditional UPDATE; the row count says whether this call
    won. A finished command stamps its finish and gives up its lease; one back in the queue
    belongs to nobody. Its holder's name stays on a finished command: a repeated last report is
    recognised by it."""
    olds = frozenset({old}) if isinstance(old, str) else frozenset(old)
    refused = sorted(state for state in olds if not may_change(state, new))
    if refused:
        raise IllegalTransition("state", f"cannot go from {refused[0]} to {new}")
    updates = {**fields, "state": new}
    if new in TERMINAL_STATES:
        updates.setdefault("finished_at", now)
        updates["lease_expires_at"] = None
    elif new == CommandState.QUEUED:
        updates.update(lease_holder="", lease_expires_at=None)
    return Command.objects.filter(pk=pk, state__in=olds, **(where or {})).update(**updates)


def _locked_transfer(command: Command) -> Transfer | None:
    """The command's transfer, row-locked, if this command is its latest attempt.
    An older attempt (already finished before a restart) no longer speaks for it."""
    if command.transfer_id is None:
        return None
    transfer = Transfer.objects.select_for_update().filter(pk=command.transfer_id).first()
    if transfer is None or transfer.latest_command_id not in (None, command.pk):
        return None
    return transfer


def carry(command: Command, *, before: Callable[[Transfer], None] | None = None,
          note: tuple[str, str] | None = None) -> Transfer | None:
    """After a change of `command`, its transfer follows it, if the command is still the
    transfer's latest attempt: `before` records what the change brought (a report's progress,
    a new lease), the transfer takes the command's state and times, and its log says how it
    ended, or `note` (kind, message) while it goes on. Returns the transfer, row-locked."""
    transfer = _locked_transfer(command)
    if transfer is None:
        return None
    if before is not None:
        before(transfer)
    transfer.follow(command)
    if command.is_terminal:
        _outcome_event(transfer, command)
    elif note is not None:
        transfer.log(*note)
    return transfer


def _outcome_event(transfer: Transfer, command: Command) -> None:
    if command.state == CommandState.SUCCEEDED:
        transfer.log("succeeded", "the transfer completed")
    elif command.state == CommandState.FAILED:
        transfer.log("failed", f"{command.reason}: {command.message}".rstrip(": "))
    elif command.state == CommandState.CANCELED:
        transfer.log("canceled", command.message or "stopped")


def enqueue_transfer(transfer: Transfer) -> Command:
    """A new attempt of the transfer at the end of its sender's queue."""
    with transaction.atomic():
        locked = Transfer.objects.select_for_update().get(pk=transfer.pk)
        command = Command.objects.create(container_id=locked.sender_id, kind=CommandKind.TRANSFER,
                                         payload=locked.command_payload(), transfer=locked)
        Transfer.objects.filter(pk=locked.pk).update(attempts=F("attempts") + 1)
        locked.refresh_from_db(fields=["attempts"])
        locked.follow(command)
        locked.log("queued" if locked.attempts == 1 else "restart",
                   "queued on the sender" if locked.attempts == 1
                   else f"attempt {locked.attempts} queued; it copies only what is missing or different")
    transfer.refresh_from_db()
    return command


def restart(transfer: Transfer) -> Command:
    """A new command for a stopped or failed transfer. Refused while an attempt is
    still queued or running, and for a transfer that already succeeded."""
    with transaction.atomic():
        locked = Transfer.objects.select_for_update().get(pk=transfer.pk)
        if not locked.can_restart:
            raise IllegalTransition(None, f"only a failed or stopped transfer can be restarted; this one is"
                                          f" {locked.state}")
        if Command.objects.filter(transfer=locked).exclude(state__in=TERMINAL_STATES).exists():
            raise IllegalTransition(None, "an attempt of this transfer is still in the queue")
        return enqueue_transfer(locked)


def claim_next(container: Container, instance_id: str) -> Command | None:
    """The oldest queued command of this container, now leased to this instance.

    One command at a time per container: while any instance holds a live
    lease, others get nothing. The same instance asking again (an agent
    restarted with its state dir) gets back the command it holds."""
    now = timezone.now()
    # Most claims find nothing (an idle agent's long-poll): one read says so without the
    # transaction, its lock and its five statements. Work queued just after this read
    # wakes the held claim, which then comes back here.
    if not Command.objects.filter(Q(state=CommandState.QUEUED) | Q(state__in=LEASED_STATES, lease_holder=instance_id),
                                  container=container).exists():
        return None
    with transaction.atomic():
        # Locking the container row serialises claims per container on
        # PostgreSQL; SQLite's IMMEDIATE transactions serialise all writers.
        Container.objects.select_for_update().filter(pk=container.pk).first()
        leased = Command.objects.filter(container=container, state__in=LEASED_STATES)
        held = leased.filter(lease_holder=instance_id).first()
        if held is not None:
            Command.objects.filter(pk=held.pk).update(lease_expires_at=_lease_deadline(now))
            held.refresh_from_db()
            return held
        if leased.exists():
            return None
        candidate = (
            Command.objects.filter(container=container, state=CommandState.QUEUED)
            .order_by("created_at", "id").values_list("pk", flat=True).first()
        )
        if candidate is None:
            return None
        claimed = change_state(candidate, CommandState.QUEUED, CommandState.CLAIMED, now=now,
                               lease_holder=instance_id, lease_expires_at=_lease_deadline(now), claimed_at=now,
                               attempt=F("attempt") + 1)
        if claimed != 1:
            return None
        command = Command.objects.get(pk=candidate)
        carry(command, before=recording.begin_lease,
              note=("started", f"the sender's agent took the command (lease {command.attempt})"))
    log.info("command %s claimed by container %s (attempt %s)", command.pk, container.pk, command.attempt)
    return command


@dataclass
class ReportReply:
    command: Command
    cancel_requested: bool
    # Only while the sender reports the `verifying` phase (portal.transfers.verification).
    verification: dict | None = None


def report(command: Command, instance_id: str, state: str, *, progress: dict | None = None,
           reason: str = "", message: str = "") -> ReportReply:
    """Apply an agent's report. Repeating the last report is harmless; a report
    from an instance that no longer holds the lease is refused."""
    now = timezone.now()
    parsed = progress_module.parse(progress) if progress is not None else None
    verifying = isinstance(progress, dict) and progress.get("phase") == Phase.VERIFYING
    with transaction.atomic():
        current = Command.objects.select_for_update().get(pk=command.pk)
        agent_words = ""
        if state == CommandState.FAILED and current.cancel_requested and RCLONE_STOP_TEXT in (message or ""):
            # The person's stop reached rclone before the agent read it: rclone's "context canceled" is the
            # stop itself, not a failure. rclone's words go to the event log only.
            state, agent_words = CommandState.CANCELED, f"{reason}: {message}"
        if current.state in TERMINAL_STATES:
            if current.state == state and current.lease_holder == instance_id:
                return ReportReply(current, current.cancel_requested)
            raise NotLeaseHolder("state", f"command is already {current.state}")
        if current.state not in LEASED_STATES or current.lease_holder != instance_id:
            raise NotLeaseHolder("state", "this agent instance does not hold the command's lease")
        if state not in REPORTED_STATES or not may_change(current.state, state):
            raise IllegalTransition("state", f"cannot go from {current.state} to {state}")
        if state == CommandState.FAILED and reason not in FailureReason.__members__.values():
            raise IllegalTransition("state", "a failed command needs a reason from the list")
        if state == CommandState.CANCELED:
            # A plain sentence for the person; the agent's own events say what it did.
            message = STOPPED_SENTENCE
        if state == CommandState.FAILED:
            reason, message = _explain_failure(current, reason, message)
        updates = {"last_report_at": now, "lease_expires_at": _lease_deadline(now)}
        if progress is not None:
            updates["progress"] = progress_module.without_lists(progress) if current.transfer_id else progress
        if state == CommandState.RUNNING and current.started_at is None:
            updates["started_at"] = now
        if state in TERMINAL_STATES:
            updates["reason"] = reason if state == CommandState.FAILED else (
                FailureReason.CANCELED_BY_USER if state == CommandState.CANCELED else "")
            updates["message"] = message
        # The row is locked and checked above: this cannot lose a race, only keep to the rules.
        change_state(current.pk, current.state, state, now=now, where={"lease_holder": instance_id}, **updates)
        current.refresh_from_db()

        def record(transfer: Transfer) -> None:
            if parsed is not None:
                fields = recording.record_progress(transfer, parsed)
                recording.merge_files(transfer, parsed.files)
                fields += recording.count_bytes(transfer, parsed.counters.get("bytes"),
                                                  parsed.counters.get("resumed_bytes"))
                transfer.save(update_fields=fields)
                recording.add_events(transfer, parsed.events)
                _watch_network(transfer, current, parsed, progress)
            if current.is_terminal and throughput.close_stalls(transfer):
                transfer.save(update_fields=["stalls"])

        transfer = carry(current, before=record)
        if transfer is not None and agent_words:
            transfer.log("stop_detail", f"the agent said: {agent_words}"[:4000])
        if transfer is not None and not current.is_terminal and (verifying or (parsed is not None and parsed.files)):
            verification.request(transfer, current, final=verifying)
    reply = ReportReply(current, current.cancel_requested)
    if verifying and not current.is_terminal:
        reply.verification = verification.verdict(transfer, current)
    return reply


def _watch_network(transfer: Transfer, command: Command, parsed, progress: dict) -> None:
    """The network check the attempt began with, the throughput series, and stalls in it."""
    if parsed.network_check is not None:
        network_check_reported.send(sender=Transfer, transfer=transfer, command=command,
                                    report=parsed.network_check)
    if not throughput.add_samples(transfer, list(parsed.samples), f"{command.pk}:{command.attempt}"):
        return
    change = throughput.detect_stall(transfer, progress)
    transfer.save(update_fields=["throughput", "stalls"])
    if change is not None:
        transfer.log(*change)


# Below this, a receiver whose sends fail is taken to be full.
FULL_RECEIVER_BYTES = 64 * 1024 * 1024


def _explain_failure(command: Command, reason: str, message: str) -> tuple[str, str]:
    """What the portal knows better than the sender. A receiver whose disk fills
    mid-transfer answers S3 with a bare 500 or drops the connection, so the sender
    can only say rclone_error or receiver_unreachable; the receiver's own
    heartbeats say how much room its receive folder has left."""
    if reason not in (FailureReason.RCLONE_ERROR, FailureReason.RECEIVER_UNREACHABLE) or not command.transfer_id:
        return reason, message
    free = (Transfer.objects.filter(pk=command.transfer_id, receiver__isnull=False)
            .values_list("receiver__disk_free_bytes", flat=True).first())
    if free is None or free >= FULL_RECEIVER_BYTES:
        return reason, message
    return (FailureReason.RECEIVER_FULL,
            f"the receiver's receive folder has {free} bytes free: its disk is full ({message})"[:4000])


def fail_held(command: Command, reason: str, message: str) -> Command:
    """The portal fails a command it has just leased, before the agent starts it
    (e.g. the grant was revoked between queueing and claiming)."""
    return report(command, command.lease_holder, CommandState.FAILED, reason=reason, message=message).command


def request_stop(command: Command) -> Command:
    """A queued command is canceled at once; a running one is asked to stop on
    its agent's next report."""
    now = timezone.now()
    with transaction.atomic():
        current = Command.objects.select_for_update().get(pk=command.pk)
        if current.state == CommandState.QUEUED:
            change_state(current.pk, CommandState.QUEUED, CommandState.CANCELED, now=now,
                         reason=FailureReason.CANCELED_BY_USER, message="stopped before it started")
        elif current.state in LEASED_STATES:
            # Not a change of state: the agent learns of it on its next report's reply.
            Command.objects.filter(pk=current.pk).update(cancel_requested=True)
        else:
            raise IllegalTransition(None, f"the command is already {current.state}")
        current.refresh_from_db()
        carry(current, note=("stop_requested", "stop requested; the agent stops at its next report"))
    return current


def stop_transfer(transfer: Transfer) -> Command:
    command = transfer.latest_command
    if command is None or transfer.is_finished:
        raise IllegalTransition(None, f"the transfer is already {transfer.state}")
    return request_stop(command)


def delete_finished(command: Command) -> None:
    if command.state not in TERMINAL_STATES:
        raise IllegalTransition(None, f"only finished commands can be deleted; this one is {command.state}")
    with transaction.atomic():
        if command.transfer_id is not None:
            transfer = Transfer.objects.select_for_update().filter(pk=command.transfer_id).first()
            if transfer is not None:
                transfer.log("removed_from_queue", f"a {command.state} attempt was removed from the queue")
        command.delete()


def delete_finished_of_transfer(transfer: Transfer) -> int:
    """Remove a finished transfer's commands from its sender's queue; the record stays."""
    transfer.refresh_from_db(fields=["state"])
    if not transfer.is_finished:
        raise IllegalTransition(None, f"only a finished transfer leaves the queue; this one is {transfer.state}")
    commands = list(Command.objects.filter(transfer=transfer, state__in=TERMINAL_STATES))
    for command in commands:
        delete_finished(command)
    return len(commands)


def fail_queued_under_grant(grant_id, message: str) -> int:
    """Fail every queued command whose transfer goes through this grant."""
    now = timezone.now()
    count = 0
    with transaction.atomic():
        for pk in list(Command.objects.filter(transfer__grant_id=grant_id, state=CommandState.QUEUED)
                       .values_list("pk", flat=True)):
            changed = change_state(pk, CommandState.QUEUED, CommandState.FAILED, now=now,
                                   reason=FailureReason.GRANT_REVOKED, message=message)
            if not changed:
                continue  # claimed meanwhile: the claim answer checks the grant again
            count += 1
            carry(Command.objects.get(pk=pk))
    return count


def queued_containers(container_ids) -> set:
    """Which of these containers have something they could claim now (one query):
    queued work and no lease held, or a claim would only come back empty.

    The query asks for every container with claimable work and leaves the waiting
    ones to a set intersection: its cost follows the queued work, not the number of
    agents waiting (2,000 ids in an IN list cost 16 ms of CPU per sweep, four sweeps
    a second in every server process)."""
    busy = Command.objects.filter(state__in=LEASED_STATES).values("container_id")
    claimable = (Command.objects.filter(state=CommandState.QUEUED).exclude(container_id__in=busy)
                 .values_list("container_id", flat=True).distinct())
    return set(container_ids).intersection(claimable)
