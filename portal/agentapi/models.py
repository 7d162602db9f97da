from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class TaskState(models.TextChoices):
    PENDING = "pending"
    ANSWERED = "answered"
    EXPIRED = "expired"


class AgentTask(models.Model):
    """A short side-channel task for an agent: answered within seconds, beside
    the command queue (docs/protocol.md, "Side channel")."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    container = models.ForeignKey("containers.Container", on_delete=models.CASCADE, related_name="tasks")
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
