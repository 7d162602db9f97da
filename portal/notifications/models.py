"""Per-person notification settings and the outbox of deliveries.

A delivery row is written when the event happens and sent later by the worker
(portal.notifications.worker), so a slow mail server or webhook never holds up
the agent report that caused the event. The row is also the record the person
sees: status, attempts, last error."""

from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from portal.lib import crypto

WEBHOOK_SECRET_PREFIX = "whsec_"


class Event(models.TextChoices):
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"
    STALL = "stall", "stalled"
    TEST = "test", "test"


# The transfer events a person can ask to hear about (`kind` of portal.transfers' transfer_event).
TRANSFER_EVENTS = (Event.SUCCEEDED, Event.FAILED, Event.STALL)


class Channel(models.TextChoices):
    EMAIL = "email", "email"
    WEBHOOK = "webhook", "webhook"


class Status(models.TextChoices):
    PENDING = "pending", "pending"
    DELIVERED = "delivered", "delivered"
    FAILED = "failed", "failed"


class NotificationSettings(models.Model):
    """One row per person, made the first time they open or change their settings;
    until then the defaults below apply."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True,
                                related_name="notification_settings")
    email_succeeded = models.BooleanField(default=True)
    email_failed = models.BooleanField(default=True)
    email_stall = models.BooleanField(default=True)
    webhook_url = models.CharField(max_length=2000, blank=True)
    webhook_succeeded = models.BooleanField(default=True)
    webhook_failed = models.BooleanField(default=True)
    webhook_stall = models.BooleanField(default=True)
    # The portal signs with it, so it is kept encrypted rather than hashed.
    webhook_secret_encrypted = crypto.CiphertextField(blank=True)
    webhook_secret_created_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "notification settings"

    def __str__(self):
        return f"notification settings of {self.user_id}"

    @classmethod
    def of(cls, user) -> "NotificationSettings":
        """The person's settings, saved or not (defaults), without writing."""
        return cls.objects.filter(user=user).first() or cls(user=user)

    @classmethod
    def for_update(cls, user) -> "NotificationSettings":
        row, _ = cls.objects.get_or_create(user=user)
        return row

    def wants(self, channel: str, event: str) -> bool:
        if event == Event.TEST:
            return True
        return bool(getattr(self, f"{channel}_{event}", False))

    @property
    def has_webhook_secret(self) -> bool:
        return bool(self.webhook_secret_encrypted)

    def new_webhook_secret(self) -> str:
        """A fresh signing secret, stored encrypted; the caller shows it once."""
        secret = WEBHOOK_SECRET_PREFIX + secrets.token_urlsafe(32)
        self.webhook_secret_encrypted = crypto.encrypt(secret)
        self.webhook_secret_created_at = timezone.now()
        self.save(update_fields=["webhook_secret_encrypted", "webhook_secret_created_at", "updated_at"])
        return secret

    def webhook_secret(self) -> str:
        return crypto.decrypt(self.webhook_secret_encrypted)


class Delivery(models.Model):
    """One mail or one webhook call for one event, and what became of it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="deliveries")
    # The record of the delivery outlives a deleted transfer; the payload says which one it was.
    transfer = models.ForeignKey("transfers.Transfer", on_delete=models.SET_NULL, null=True, blank=True,
                                 related_name="+")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    event = models.CharField(max_length=10, choices=Event.choices)
    # What the event said, taken when it happened (the webhook body without delivery_id).
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # When the worker may next try; a claim moves it forward, which is the claim's lease.
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due_idx"),
            models.Index(fields=["user", "-created_at"], name="delivery_user_idx"),
        ]

    def __str__(self):
        return f"{self.channel} {self.event} delivery {self.id} ({self.status})"
