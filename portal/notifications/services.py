"""Changing a person's notification settings: one path for the page and the API."""

from __future__ import annotations

from django.db import transaction

from portal.notifications.models import NotificationSettings

TOGGLES = ("email_succeeded", "email_failed", "email_stall", "webhook_succeeded", "webhook_failed", "webhook_stall")


def update(user, data: dict) -> tuple[NotificationSettings, str | None]:
    """Apply validated changes (absent keys keep their value). The second value
    is a signing secret made just now, for the first webhook URL: the caller
    shows it once; it is never readable again."""
    with transaction.atomic():
        prefs = NotificationSettings.for_update(user)
        if "email_address" in data and data["email_address"] != user.email:
            user.email = data["email_address"]
            user.save(update_fields=["email"])
        for name in (*TOGGLES, "webhook_url"):
            if name in data:
                setattr(prefs, name, data[name])
        prefs.save()
        new_secret = None
        if prefs.webhook_url and not prefs.has_webhook_secret:
            new_secret = prefs.new_webhook_secret()
    return prefs, new_secret


def rotate_secret(user) -> tuple[NotificationSettings, str]:
    with transaction.atomic():
        prefs = NotificationSettings.for_update(user)
        return prefs, prefs.new_webhook_secret()
