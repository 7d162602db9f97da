from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from dtn_protocol.endpoints import Destination, EndpointRefused, check_receiver
from dtn_protocol.failures import FailureReason
from dtn_protocol.states import (
    FAILED_FILE_OUTCOMES, FINISHED_TRANSFER_STATES, RESTARTABLE_TRANSFER_STATES, TERMINAL_STATES, TRANSFER_STATE_OF,
    CommandKind, CommandState,
)
from portal.containers.addresses import receiver_rule
from portal.lib import crypto
from portal.transfers import validation
from portal.transfers.choices import (
    CommandStates, DestinationKind, FailureReasons, FileOutcome, NetworkCheckMode, Overwrite, TransferState,
)
from portal.transfers.signals import transfer_event

log = logging.getLogger("portal.transfers")


class Command(models.Model):
    """One unit of work in a container's queue. The agent that claims it holds
    a lease that its reports extend; the reaper takes back expired leases."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    container = models.ForeignKey("containers.Container", on_delete=models.CASCADE, related_name="commands")
    # The transfer this command is an attempt of; deleting the command from the
    # queue leaves the transfer's record.
    transfer = models.ForeignKey("transfers.Transfer", on_delete=models.CASCADE, null=True, blank=True,
                                 related_name="commands")
    kind = models.CharField(max_length=30, default=CommandKind.TRANSFER.value)
    payload = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=10, choices=CommandStates.choices, default=CommandStates.QUEUED)
    reason = models.CharField(max_length=30, choices=FailureReasons.choices, blank=True)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # How many times an agent has claimed it; the reaper gives up at DTN_MAX_ATTEMPTS.
    attempt = models.PositiveIntegerField(default=0)
    lease_holder = models.CharField(max_length=64, blank=True, help_text="Agent instance holding the lease.")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    progress = models.JSONField(default=dict, blank=True)
    last_report_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["container", "state", "created_at"], name="command_queue_idx"),
            models.Index(fields=["state", "lease_expires_at"], name="command_lease_idx"),
        ]

    def __str__(self):
        return f"{self.kind} {self.id} ({self.state})"

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def counts(self) -> dict:
        """This attempt's figures from its agent's last report: {files: {done, total}, bytes: {done, total,
        resent}}. Within one attempt too a byte moved twice (a job rclone lost and started again) is
        re-sent: done never exceeds the total."""
        progress = self.progress if isinstance(self.progress, dict) else {}

        def number(key):
            value = progress.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0

        files_total, bytes_total, moved = number("files_total"), number("total_bytes"), number("bytes")
        done = min(moved, bytes_total) if bytes_total else moved
        return {"files": {"done": min(number("files_done"), files_total) if files_total else number("files_done"),
                          "total": files_total},
                "bytes": {"done": done, "total": bytes_total, "resent": moved - done}}


class DestinationUnavailable(Exception):
    """The destination cannot be handed to the agent; the command fails with `reason`."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class Transfer(models.Model):
    """One send, modelled on Globus's task document: what to send where, and
    what happened, across every attempt (command) made for it.

    Counters of files come from the per-file results (TransferFile); bytes
    moved and faults from the agents' progress reports. The state follows the
    latest command. docs/transfer-record.md describes every field."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="transfers")
    sender = models.ForeignKey("containers.Container", on_delete=models.CASCADE, related_name="transfers_sent")
    label = models.CharField(max_length=validation.MAX_LABEL_LENGTH, blank=True)
    sources = models.JSONField(default=list)

    # Destination: a receiver container reached by a grant, or an S3 endpoint entered by hand.
    destination_kind = models.CharField(max_length=10, choices=DestinationKind.choices)
    receiver = models.ForeignKey("containers.Container", on_delete=models.SET_NULL, null=True, blank=True,
                                 related_name="transfers_received")
    grant = models.ForeignKey("grants.Grant", on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="transfers")
    # Kept so the record still says where data went after the receiver is deleted.
    receiver_name = models.CharField(max_length=100, blank=True)
    receiver_owner_name = models.CharField(max_length=150, blank=True)
    s3_host = models.CharField(max_length=253, blank=True)
    s3_port = models.PositiveIntegerField(null=True, blank=True)
    s3_tls = models.BooleanField(default=True)
    s3_access_key = models.CharField(max_length=validation.MAX_KEY_LENGTH, blank=True)
    s3_secret_key_encrypted = crypto.CiphertextField(blank=True)
    bucket = models.CharField(max_length=63)
    prefix = models.CharField(max_length=1024, blank=True)

    verify_checksums = models.BooleanField(default=validation.DEFAULT_VERIFY_CHECKSUMS)
    overwrite = models.CharField(max_length=20, choices=Overwrite.choices, default=validation.DEFAULT_OVERWRITE)
    bandwidth_limit = models.CharField(max_length=20, blank=True)
    network_check_mode = models.CharField(max_length=10, choices=NetworkCheckMode.choices,
                                          default=NetworkCheckMode.ENFORCE)
    # The user's overrides of the agent's tuning: transfers, checkers, upload_concurrency, chunk_size.
    tuning = models.JSONField(default=dict, blank=True)

    state = models.CharField(max_length=10, choices=TransferState.choices, default=TransferState.QUEUED)
    latest_command = models.ForeignKey(Command, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    attempts = models.PositiveIntegerField(default=0, help_text="Commands made for this transfer (1 + restarts).")

    files_total = models.BigIntegerField(default=0)
    files_transferred = models.BigIntegerField(default=0)
    files_verified = models.BigIntegerField(default=0)
    files_skipped = models.BigIntegerField(default=0)
    files_failed = models.BigIntegerField(default=0)
    bytes_total = models.BigIntegerField(default=0)
    bytes_transferred = models.BigIntegerField(default=0)
    bytes_verified = models.BigIntegerField(default=0)
    bytes_skipped = models.BigIntegerField(default=0)
    bytes_failed = models.BigIntegerField(default=0)
    # Bytes sent again: a file interrupted by a stop or a lost lease is sent again from its start (rclone
    # cannot resume an upload; the agent's own upload of a large file resends only its parts cut short),
    # and those bytes are not progress. bytes_transferred counts each byte of the
    # dataset once (never more than bytes_total); bytes_transferred + bytes_resent is all rclone moved.
    bytes_resent = models.BigIntegerField(default=0)
    # What leases that ended before the current one left: an agent's counters start from zero with each
    # lease, the record's do not. bytes_before_lease is the size of the files they sent (what a new lease
    # finds there and does not send again); moved_before_lease every byte they moved.
    bytes_before_lease = models.BigIntegerField(default=0)
    moved_before_lease = models.BigIntegerField(default=0)
    faults_before_lease = models.BigIntegerField(default=0)
    faults = models.BigIntegerField(default=0)
    speed = models.FloatField(null=True, blank=True, help_text="Bytes/s the agent last reported.")
    eta = models.BigIntegerField(null=True, blank=True, help_text="Seconds left, as the agent last estimated.")
    fatal_reason = models.CharField(max_length=30, choices=FailureReasons.choices, blank=True)
    fatal_message = models.TextField(blank=True)
    # The network check of the latest attempt, and the throughput series with its stalls
    # (portal/transfers/throughput.py keeps them bounded).
    network_check = models.ForeignKey("netcheck.NetworkCheck", on_delete=models.SET_NULL, null=True, blank=True,
                                      related_name="+")
    throughput = models.JSONField(default=dict, blank=True)
    stalls = models.JSONField(default=list, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # Time spent with an attempt leased, so the overall speed leaves out the idle time between a stop and a
    # restart: the seconds of attempts that ended, and since when the current one has been active.
    active_seconds = models.FloatField(default=0.0)
    active_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="transfer_owner_idx")]

    def __str__(self):
        return f"transfer {self.id} ({self.state})"

    # --- what the person sees -------------------------------------------------

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED_TRANSFER_STATES

    @property
    def can_restart(self) -> bool:
        return self.state in RESTARTABLE_TRANSFER_STATES

    @property
    def can_stop(self) -> bool:
        return not self.is_finished

    @property
    def stop_requested(self) -> bool:
        command = self.latest_command
        return bool(command and command.cancel_requested and not command.is_terminal)

    @property
    def endpoint(self) -> str:
        """The S3 endpoint as known now (a receiver reports its own; it may move)."""
        if self.destination_kind == DestinationKind.S3:
            return validation.endpoint_url(self.s3_host, self.s3_port, self.s3_tls)
        return self.receiver.endpoint if self.receiver else ""

    @property
    def destination_display(self) -> str:
        if self.destination_kind == DestinationKind.S3:
            where = self.endpoint
        else:
            where = f"{self.receiver_name} (of {self.receiver_owner_name})"
        return f"{where} / {self.bucket}/{self.prefix}".rstrip("/")

    def counts(self, unit: str) -> dict:
        """files_* or bytes_* as {total, transferred, verified, skipped, failed}, bytes with `resent` too:
        the record's shape."""
        names = ("total", "transferred", "verified", "skipped", "failed") + (("resent",) if unit == "bytes" else ())
        return {name: getattr(self, f"{unit}_{name}") for name in names}

    @property
    def bytes_moved(self) -> int:
        """Every byte rclone moved for this transfer, those sent again included."""
        return self.bytes_transferred + self.bytes_resent

    def active_time(self, now=None) -> float:
        """Seconds with an attempt leased: the wait in the queue and the time between a stop and a restart
        are not the transfer's doing."""
        running = ((now or timezone.now()) - self.active_since).total_seconds() if self.active_since else 0.0
        return self.active_seconds + max(0.0, running)

    @property
    def effective_speed(self) -> float | None:
        """Bytes moved per second of active time, across every attempt."""
        if self.started_at is None:
            return None
        elapsed = self.active_time()
        return round(self.bytes_moved / elapsed, 1) if elapsed > 0 else None

    @property
    def fatal_error(self) -> dict | None:
        if not self.fatal_reason:
            return None
        return {"reason": self.fatal_reason, "message": self.fatal_message}

    def log_line(self, kind: str, message: str, source: str) -> None:
        """The event in the portal's log too, its IDs as fields of their own (a JSON log's keys), so an
        operator can follow one transfer, or one container, across processes and replicas."""
        log.info("transfer %s %s: %s", self.id, kind, message,
                 extra={"transfer_id": str(self.id), "container_id": str(self.sender_id),
                        "receiver_id": str(self.receiver_id) if self.receiver_id else None,
                        "event": kind, "source": source})

    # --- what the agent gets ----------------------------------------------------

    def command_payload(self) -> dict:
        """The command as queued. No credentials and no endpoint: those are
        added to the claim answer (destination_for_agent), for the lease holder."""
        return {
            "transfer_id": str(self.id),
            "sources": list(self.sources),
            "options": {
                "verify_checksums": self.verify_checksums,
                "overwrite": self.overwrite,
                "bandwidth_limit": self.bandwidth_limit,
                "label": self.label,
                "network_check": self.network_check_mode,
                **(self.tuning or {}),
            },
        }

    def destination_for_agent(self) -> dict:
        """Endpoint and keys for the agent holding this transfer's command, as
        docs/protocol.md shows them. Raises DestinationUnavailable when the
        grant is gone or the receiver has no endpoint."""
        if self.destination_kind == DestinationKind.S3:
            return {
                "kind": Destination.S3.value, "endpoint": self.endpoint, "bucket": self.bucket, "prefix": self.prefix,
                "access_key": self.s3_access_key, "secret_key": crypto.decrypt(self.s3_secret_key_encrypted),
                "tls": self.s3_tls, "certificate_pem": None, "certificate_sha256": None,
            }
        grant, receiver = self.grant, self.receiver
        if grant is None or receiver is None or not grant.is_active or grant.receiver_id != receiver.pk:
            raise DestinationUnavailable(FailureReason.GRANT_REVOKED,
                                         "the receiver's owner revoked the grant (or deleted the receiver)")
        destination = grant.destination(self.prefix)
        if not destination["endpoint"]:
            raise DestinationUnavailable(FailureReason.RECEIVER_UNREACHABLE,
                                         "the receiver container has not reported an S3 endpoint for this grant")
        try:
            # Checked again as it leaves: a record from before the rule, or one changed behind the
            # heartbeat's back, never hands a grant's keys to a refused address.
            check_receiver(destination["endpoint"], receiver_rule(), pinned=bool(destination["certificate_pem"]))
        except EndpointRefused as exc:
            raise DestinationUnavailable(FailureReason.DESTINATION_REFUSED, str(exc)) from None
        return destination

    # --- changes, called by portal.transfers.queue inside its transactions -----
    # (what a report records, counters, files and events, is portal/transfers/recording.py)

    def follow(self, command: Command) -> None:
        """Take state and times from the command that is now this transfer's latest."""
        now = timezone.now()
        self.latest_command = command
        self.state = TRANSFER_STATE_OF[CommandState(command.state)]
        if self.state == TransferState.ACTIVE and self.started_at is None:
            self.started_at = command.started_at or command.claimed_at or now
        if self.state == TransferState.ACTIVE and self.active_since is None:
            self.active_since = command.claimed_at or now
        elif self.state != TransferState.ACTIVE and self.active_since is not None:
            # The attempt's lease ended (finished, or back in the queue): its time is banked.
            ended = command.finished_at or now
            self.active_seconds += max(0.0, (ended - self.active_since).total_seconds())
            self.active_since = None
        if self.state != TransferState.ACTIVE:
            # Speed and ETA are of an attempt that runs: none while queued (a lost lease too) or finished.
            self.speed = self.eta = None
        if self.is_finished:
            self.completed_at = command.finished_at or now
            if command.state == CommandState.SUCCEEDED:
                self.fatal_reason, self.fatal_message = "", ""
            else:
                self.fatal_reason, self.fatal_message = command.reason, command.message
        else:
            self.completed_at = None
            self.fatal_reason, self.fatal_message = "", ""
        self.save(update_fields=["latest_command", "state", "started_at", "completed_at", "speed", "eta",
                                 "fatal_reason", "fatal_message", "active_seconds", "active_since"])

    def log(self, kind: str, message: str) -> None:
        """An event the portal itself records (queued, started, stop, restart, ...)."""
        # Ignoring a conflict: an event of the same kind in the same microsecond
        # must not abort the transaction that is recording a state change.
        TransferEvent.objects.bulk_create([TransferEvent(transfer=self, at=timezone.now(), kind=kind, message=message,
                                                         source=TransferEvent.Source.PORTAL)], ignore_conflicts=True)
        self.log_line(kind, message, TransferEvent.Source.PORTAL)
        transaction.on_commit(lambda: transfer_event.send(sender=Transfer, transfer=self, kind=kind, message=message))


class TransferFile(models.Model):
    """One file's result, as the sender agent reported it; one row per path."""

    # Indexed with the row's ID (transfer_file_order_idx): a page of a transfer's files, in the order they
    # were first reported, is one range read whatever its size; the unique index serves lookups by path.
    transfer = models.ForeignKey(Transfer, on_delete=models.CASCADE, related_name="files", db_index=False)
    path = models.TextField()
    path_key = models.CharField(max_length=64)
    size = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True, help_text="SHA-256 computed at the sender.")
    receiver_sha256 = models.CharField(max_length=64, blank=True, help_text="SHA-256 of what landed.")
    outcome = models.CharField(max_length=10, choices=FileOutcome.choices)
    error = models.TextField(blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    # When the receiver was last asked for this file's SHA-256 (portal.transfers.verification).
    verify_asked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["path"]
        constraints = [models.UniqueConstraint(fields=["transfer", "path_key"], name="transfer_file_unique_path")]
        indexes = [
            models.Index(fields=["transfer", "id"], name="transfer_file_order_idx"),
            # The files not yet asked of the receiver (never, or before this lease), looked for on every report
            # (portal.transfers.verification.request): a range of this index, not every row of the transfer.
            models.Index(fields=["transfer", "verify_asked_at"], name="transfer_file_asked_idx"),
        ]

    @property
    def verified(self) -> bool:
        # A skipped file counts too: it is at the destination with the right content.
        return (self.outcome in (FileOutcome.SENT, FileOutcome.SKIPPED) and bool(self.sha256)
                and self.sha256 == self.receiver_sha256)

    def contribution(self) -> dict:
        """What this row adds to its transfer's counters (recording.FILE_COUNTERS)."""
        sent, skipped = (self.outcome == o for o in (FileOutcome.SENT, FileOutcome.SKIPPED))
        # Missing at the receiver, or different there, fails the file as surely as an error of rclone.
        failed = self.outcome in FAILED_FILE_OUTCOMES
        return {"files_transferred": int(sent), "files_skipped": int(skipped), "files_failed": int(failed),
                "files_verified": int(self.verified), "bytes_skipped": self.size if skipped else 0,
                "bytes_failed": self.size if failed else 0, "bytes_verified": self.size if self.verified else 0}


class TransferEvent(models.Model):
    """The transfer's log: what the portal decided and what the agent saw."""

    class Source(models.TextChoices):
        PORTAL = "portal"
        AGENT = "agent"

    transfer = models.ForeignKey(Transfer, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField()
    kind = models.CharField(max_length=40)
    message = models.TextField(blank=True)
    source = models.CharField(max_length=10, choices=Source.choices)

    class Meta:
        ordering = ["at", "id"]
        constraints = [models.UniqueConstraint(fields=["transfer", "at", "kind"], name="transfer_event_unique")]
