"""The outbox: deliveries written when an event happens, sent by the worker.

Several server processes may run a worker over one database. A worker takes a
delivery with a conditional UPDATE on the `next_attempt_at` it read, moving it
forward by CLAIM_SECONDS; the row count tells it whether it won. That same move
is the claim's lease: if the process dies mid-send, the delivery becomes due
again once the lease has passed."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from portal.notifications.delivery import DeliveryFailed, send
from portal.notifications.models import TRANSFER_EVENTS, Channel, Delivery, Event, NotificationSettings, Status

log = logging.getLogger(__name__)

# Longer than any one send can take (the webhook and SMTP timeouts are seconds).
CLAIM_SECONDS = 120
MAX_BACKOFF_SECONDS = 3600
# Finished deliveries are kept this long for the person to look at.
KEEP_DAYS = 30
BATCH = 20


def transfer_payload(transfer, event: str, message: str) -> dict:
    """What the event says about the transfer, as it is now: the webhook's body
    (without delivery_id) and the mail's content."""
    link = settings.SITE_URL.rstrip("/") + reverse("transfer", kwargs={"transfer_id": transfer.pk})
    return {
        "event": event,
        "at": timezone.now().isoformat(),
        "transfer_id": str(transfer.pk),
        "label": transfer.label,
        "state": transfer.state,
        "reason": (transfer.fatal_reason or None) if event == Event.FAILED else None,
        "message": message,
        "sender": {"container_id": str(transfer.sender_id), "name": transfer.sender.name},
        "destination": transfer.destination_display,
        "bytes_total": transfer.bytes_total,
        "bytes_transferred": transfer.bytes_transferred,
        "bytes_skipped": transfer.bytes_skipped,
        "bytes_resent": transfer.bytes_resent,
        "files_total": transfer.files_total,
        "files_transferred": transfer.files_transferred,
        "files_skipped": transfer.files_skipped,
        "files_failed": transfer.files_failed,
        "files_verified": transfer.files_verified,
        "attempts": transfer.attempts,
        "url": link,
    }


def sample_payload(user) -> dict:
    return {"event": Event.TEST, "at": timezone.now().isoformat(), "transfer_id": None, "label": "",
            "state": None, "reason": None, "message": f"a test notification for {user.username}",
            "url": settings.SITE_URL.rstrip("/") + reverse("notifications")}


def channels_for(prefs: NotificationSettings, event: str) -> list[str]:
    channels = []
    if prefs.wants(Channel.EMAIL, event) and prefs.user.email:
        channels.append(Channel.EMAIL)
    if prefs.webhook_url and prefs.wants(Channel.WEBHOOK, event):
        channels.append(Channel.WEBHOOK)
    return channels


def enqueue(user, event: str, payload: dict, channels: list[str], transfer=None) -> list[Delivery]:
    with transaction.atomic():
        return [Delivery.objects.create(user=user, transfer=transfer, channel=channel, event=event, payload=payload)
                for channel in channels]


def on_transfer_event(transfer, kind: str, message: str) -> list[Delivery]:
    """Deliveries for one recorded event, to the transfer's owner only: whoever
    owns the receiver or the sender's machine hears nothing of other people's sends."""
    if kind not in TRANSFER_EVENTS:
        return []
    from portal.transfers.models import Transfer

    transfer = Transfer.objects.select_related("owner", "sender").get(pk=transfer.pk)
    prefs = NotificationSettings.of(transfer.owner)
    prefs.user = transfer.owner  # already loaded; spares a query on the report's thread
    channels = channels_for(prefs, kind)
    if not channels:
        return []
    return enqueue(transfer.owner, kind, transfer_payload(transfer, kind, message), channels, transfer=transfer)


def enqueue_test(user) -> list[Delivery]:
    prefs = NotificationSettings.of(user)
    return enqueue(user, Event.TEST, sample_payload(user), channels_for(prefs, Event.TEST))


# --- the worker's side ------------------------------------------------------

def claim(delivery: Delivery, now) -> bool:
    taken = Delivery.objects.filter(pk=delivery.pk, status=Status.PENDING,
                                    next_attempt_at=delivery.next_attempt_at).update(
        next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS), attempts=F("attempts") + 1)
    return taken == 1


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(settings.DTN_NOTIFY_RETRY_SECONDS * 2 ** (attempts - 1), MAX_BACKOFF_SECONDS))


def deliver(delivery: Delivery) -> str:
    """Send one claimed delivery and record the outcome; the new status."""
    delivery.refresh_from_db()
    try:
        send(delivery)
    except DeliveryFailed as exc:
        error, retry = str(exc), exc.retry
    except Exception as exc:  # a bug here must not stop the worker or lose the record
        log.exception("delivery %s: unexpected error", delivery.pk)
        error, retry = f"internal error ({type(exc).__name__})", True
    else:
        Delivery.objects.filter(pk=delivery.pk).update(status=Status.DELIVERED, last_error="",
                                                       finished_at=timezone.now())
        log.info("delivery %s: %s %s delivered", delivery.pk, delivery.channel, delivery.event)
        return Status.DELIVERED
    now = timezone.now()
    if retry and delivery.attempts < settings.DTN_NOTIFY_MAX_ATTEMPTS:
        Delivery.objects.filter(pk=delivery.pk).update(last_error=error,
                                                       next_attempt_at=now + backoff(delivery.attempts))
        log.info("delivery %s: attempt %s failed, will retry: %s", delivery.pk, delivery.attempts, error)
        return Status.PENDING
    Delivery.objects.filter(pk=delivery.pk).update(status=Status.FAILED, last_error=error, finished_at=now)
    log.warning("delivery %s: gave up after %s attempt(s): %s", delivery.pk, delivery.attempts, error)
    return Status.FAILED


def deliver_due(limit: int = BATCH) -> int:
    """One pass: send what is due, oldest first. How many were attempted."""
    now = timezone.now()
    due = list(Delivery.objects.filter(status=Status.PENDING, next_attempt_at__lte=now)
               .order_by("next_attempt_at", "created_at")[:limit])
    attempted = 0
    for delivery in due:
        if claim(delivery, now):
            deliver(delivery)
            attempted += 1
    return attempted


def prune(now=None) -> int:
    cutoff = (now or timezone.now()) - timedelta(days=KEEP_DAYS)
    deleted, _ = Delivery.objects.filter(status__in=(Status.DELIVERED, Status.FAILED),
                                         created_at__lt=cutoff).delete()
    return deleted
