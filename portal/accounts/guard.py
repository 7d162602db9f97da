"""The per-username limit on password sign-ins, beside django-axes' per-(username, address) lock.

Axes locks a username at one address after DTN_LOGIN_FAILURE_LIMIT failures; a guesser with many addresses
gets that many guesses at each. So once a username has DTN_LOGIN_USERNAME_FAILURE_LIMIT failures within the
cool-off, counted over every address, its password sign-ins are refused from every address its person has not
signed in from (in the last KNOWN_FOR_DAYS): the guesser is stopped, and the person still gets in where they
usually do. Unknown usernames are treated the same, so the lock says nothing about who has an account.
docs/configuration.md, "Sign-in limits", says how a locked-out person gets back in."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.db.models import Sum
from django.utils import timezone

from portal.accounts.models import SignInAddress, User

KNOWN_FOR_DAYS = 90
USERNAME_LOCKED_MESSAGE = (
    "Too many failed sign-ins for this username from new addresses. Sign in from a place you used before, "
    "or wait a few minutes and try again.")


def client_address(request) -> str | None:
    # REMOTE_ADDR is the client as the server saw it, or as a configured proxy named it (gunicorn.conf.py):
    # never a header the client chose.
    raw = request.META.get("REMOTE_ADDR", "") if request is not None else ""
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        return None


def failures(username: str) -> int:
    """Failed password sign-ins for `username` within the cool-off, from every address (axes' own records)."""
    since = timezone.now() - timedelta(hours=settings.AXES_COOLOFF_TIME)
    total = (AccessAttempt.objects.filter(username=username, attempt_time__gte=since)
             .aggregate(total=Sum("failures_since_start"))["total"])
    return total or 0


def known(username: str, address: str | None) -> bool:
    if not address:
        return False
    since = timezone.now() - timedelta(days=KNOWN_FOR_DAYS)
    return SignInAddress.objects.filter(user__username=username, address=address, last_at__gte=since).exists()


def locked(username: str, address: str | None) -> bool:
    return failures(username) >= settings.DTN_LOGIN_USERNAME_FAILURE_LIMIT and not known(username, address)


def remember(user: User, address: str | None) -> None:
    if address:
        SignInAddress.objects.update_or_create(user=user, address=address, defaults={"last_at": timezone.now()})


class GuardedModelBackend(ModelBackend):
    """Django's username-and-password backend behind the per-username lock; it remembers where each person
    signed in from. Every password sign-in (pages, the API's auth/token, the admin) comes through here."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        address = client_address(request)
        if request is not None and username and locked(str(username), address):
            # Answered by axes' middleware with our lockout response (accounts.views.locked_out); the failure
            # is still counted against this address.
            request.axes_locked_out = True
            request.dtn_username_locked = True
            raise PermissionDenied
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None:
            remember(user, address)
        return user
