from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from dtn_protocol.api import AGENT_TOKEN_PREFIX
from portal.lib import tokens

# A container is online while its heartbeats arrive; three missed beats and it is not.
MISSED_HEARTBEATS_OFFLINE = 3


class Role(models.TextChoices):
    SENDER = "sender"
    RECEIVER = "receiver"
    BOTH = "both"


SENDER_ROLES = (Role.SENDER, Role.BOTH)
RECEIVER_ROLES = (Role.RECEIVER, Role.BOTH)


class ContainerQuerySet(models.QuerySet):
    def own_senders(self, user):
        return self.filter(owner=user, role__in=SENDER_ROLES)

    def own_receivers(self, user):
        return self.filter(owner=user, role__in=RECEIVER_ROLES)


class Container(models.Model):
    """A site's agent, registered by its owner. The token is the agent's
    identity; only its HMAC is kept."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="containers")
    name = models.CharField(max_length=100)
    role = models.CharField(max_length=10, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    token_lookup = models.CharField(max_length=tokens.LOOKUP_LENGTH, unique=True)
    token_digest = models.CharField(max_length=64)
    token_rotated_at = models.DateTimeField(default=timezone.now)

    # What the last heartbeat said.
    last_seen_at = models.DateTimeField(null=True, blank=True)
    agent_version = models.CharField(max_length=40, blank=True)
    rclone_version = models.CharField(max_length=40, blank=True)
    hostname = models.CharField(max_length=255, blank=True)
    disk_free_bytes = models.BigIntegerField(null=True, blank=True)
    endpoint = models.CharField(max_length=255, blank=True, help_text="S3 endpoint a receiver advertises.")
    health = models.JSONField(default=dict, blank=True)
    # The receiver's self-signed TLS certificate, pinned by senders (see docs/protocol.md).
    certificate_pem = models.TextField(null=True, blank=True)
    certificate_sha256 = models.CharField(max_length=95, null=True, blank=True)

    objects = ContainerQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="container_name_unique_per_owner")]

    def __str__(self):
        return f"{self.name} ({self.id})"

    @property
    def is_sender(self) -> bool:
        return self.role in SENDER_ROLES

    @property
    def is_receiver(self) -> bool:
        return self.role in RECEIVER_ROLES

    @staticmethod
    def online_since():
        """A container last seen after this moment is online."""
        return timezone.now() - timedelta(seconds=settings.DTN_HEARTBEAT_SECONDS * MISSED_HEARTBEATS_OFFLINE)

    @property
    def tcp(self) -> dict | None:
        """The TCP settings the agent last reported in effect where it runs (agent/tcptune.py), or None."""
        health = self.health if isinstance(self.health, dict) else {}
        tcp = health.get("tcp")
        if not isinstance(tcp, dict) or not isinstance(tcp.get("congestion_control"), (str, type(None))):
            return None
        tuned = tcp.get("tuned") if isinstance(tcp.get("tuned"), dict) else {}
        limits = [value[2] for value in (tcp.get("tcp_rmem"), tcp.get("tcp_wmem"))
                  if isinstance(value, list) and len(value) == 3 and all(isinstance(v, int) for v in value)]
        return {"congestion_control": tcp.get("congestion_control"),
                "buffer_limit_bytes": min(limits) if limits else None,
                "tuned": {key: tuned.get(key) is True for key in ("congestion_control", "tcp_rmem", "tcp_wmem")}}

    @property
    def online(self) -> bool:
        return self.last_seen_at is not None and self.last_seen_at > self.online_since()

    @classmethod
    def register(cls, owner, name: str, role: str) -> tuple["Container", str]:
        minted = tokens.mint(AGENT_TOKEN_PREFIX)
        container = cls.objects.create(
            owner=owner, name=name, role=role, token_lookup=minted.lookup, token_digest=minted.digest
        )
        return container, minted.token

    @classmethod
    def authenticate(cls, raw: str) -> "Container | None":
        lookup, secret = tokens.split(raw, AGENT_TOKEN_PREFIX)
        row = cls.objects.select_related("owner").filter(token_lookup=lookup).first() if lookup else None
        if not tokens.verify(secret, row.token_digest if row else None) or not row.owner.is_active:
            return None
        return row

    def rotate_token(self) -> str:
        """A new token; the old one stops working at once."""
        minted = tokens.mint(AGENT_TOKEN_PREFIX)
        self.token_lookup, self.token_digest = minted.lookup, minted.digest
        self.token_rotated_at = timezone.now()
        self.save(update_fields=["token_lookup", "token_digest", "token_rotated_at"])
        return minted.token


class TaskState(models.TextChoices):
    PENDING = "pending"
    ANSWERED = "answered"
    EXPIRED = "expired"


class AgentTask(models.Model):
    """A short side-channel task for a container's agent: answered within seconds,
    beside the command queue (docs/protocol.md, "Side channel"). Asked by the apps
    above (portal/containers/tasks.py); the agents' API hands it over."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    container = models.ForeignKey(Container, on_delete=models.CASCADE, related_name="tasks")
    kind = models.CharField(max_length=40)
    params = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=10, choices=TaskState.choices, default=TaskState.PENDING)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True,
                                     related_name="+")
    # Set when the portal itself asked, on behalf of a transfer (e.g. receiver verification).
    command = models.ForeignKey("transfers.Command", on_delete=models.CASCADE, null=True, blank=True,
                                related_name="tasks")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)
    # When it was last handed to the agent: it is not handed again while the agent works on it.
    offered_at = models.DateTimeField(null=True, blank=True)
    ok = models.BooleanField(null=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["container", "state", "created_at"], name="agent_task_pending_idx"),
                   # The tasks sweeper: every pending task not yet due, whichever container it is for.
                   models.Index(fields=["state", "expires_at"], name="agent_task_due_idx")]

    def __str__(self):
        return f"{self.kind} {self.id} ({self.state})"

    @property
    def overdue(self) -> bool:
        """Past its deadline: expired, whether or not that has been written yet."""
        return self.state == TaskState.EXPIRED or (self.state == TaskState.PENDING
                                                   and self.expires_at <= timezone.now())
