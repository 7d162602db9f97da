"""Listening to portal.transfers: each recorded event may become deliveries.

This runs on the thread that recorded the event, often an agent's report,
after its transaction committed. It only writes outbox rows and wakes the
worker; and whatever goes wrong here is logged and swallowed, because the
report has already succeeded and must get its answer."""

from __future__ import annotations

import logging

from django.dispatch import receiver

from portal.notifications import outbox, worker
from portal.transfers.signals import transfer_event

log = logging.getLogger(__name__)


@receiver(transfer_event, dispatch_uid="notifications.on_transfer_event")
def on_transfer_event(sender, transfer, kind, message, **kwargs):
    try:
        if outbox.on_transfer_event(transfer, kind, message):
            worker.wake()
    except Exception:
        log.exception("notifications for transfer %s (%s) could not be queued", getattr(transfer, "pk", None), kind)
