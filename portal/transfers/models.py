from __future__ import annotations

import uuid

from django.db import models

from agent.protocol import LEASED_STATES, TERMINAL_STATES, CommandState
from portal.transfers.choices import CommandStates, FailureReasons


class Command(models.Model):
    """One unit of work in a container's queue. The agent that claims it holds
    a lease that its reports extend; the reaper takes back expired leases."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    container = models.ForeignKey("containers.Container", on_delete=models.CASCADE, related_name="commands")
    kind = models.CharField(max_length=30, default="transfer")
    payload = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=10, choices=CommandStates.choices, default=CommandState.QUEUED)
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

    @property
    def is_leased(self) -> bool:
        return self.state in LEASED_STATES
