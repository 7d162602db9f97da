"""A network check's record: asked for by a person (sender → receiver), or run
by the sender's agent at the start of a transfer and reported with it."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from dtn_protocol import netcheck
from portal.lib.choices import text_choices
from portal.transfers.choices import FailureReasons


class CheckState(models.TextChoices):
    PENDING = "pending", "waiting for the sender's agent"
    DONE = "done", "done"
    FAILED = "failed", "the agent could not run it"
    EXPIRED = "expired", "the agent did not answer in time"


Verdict = text_choices("Verdict", netcheck.Verdict, {
    netcheck.Verdict.GO: "go", netcheck.Verdict.WARN: "warn", netcheck.Verdict.NO_GO: "no-go"})


class NetworkCheck(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="network_checks")
    sender = models.ForeignKey("containers.Container", on_delete=models.CASCADE, related_name="network_checks")
    receiver = models.ForeignKey("containers.Container", on_delete=models.SET_NULL, null=True, blank=True,
                                 related_name="+")
    grant = models.ForeignKey("grants.Grant", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # Set for the check a transfer started with (one per attempt); empty for one asked on demand.
    transfer = models.ForeignKey("transfers.Transfer", on_delete=models.CASCADE, null=True, blank=True,
                                 related_name="network_checks")
    command = models.ForeignKey("transfers.Command", on_delete=models.SET_NULL, null=True, blank=True,
                                related_name="+")
    task = models.OneToOneField("containers.AgentTask", on_delete=models.SET_NULL, null=True, blank=True,
                                related_name="network_check")
    endpoint = models.CharField(max_length=255, blank=True)
    total_bytes = models.BigIntegerField(null=True, blank=True, help_text="The size the prediction is for.")
    files = models.BigIntegerField(null=True, blank=True)
    state = models.CharField(max_length=10, choices=CheckState.choices, default=CheckState.PENDING)
    verdict = models.CharField(max_length=10, choices=Verdict.choices, blank=True)
    reason = models.CharField(max_length=30, choices=FailureReasons.choices, blank=True)
    summary = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)
        indexes = [models.Index(fields=["owner", "-created_at"])]

    def __str__(self):
        return f"network check {self.pk} ({self.state} {self.verdict})"
