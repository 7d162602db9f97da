"""Granting and revoking: one place for the page and the API."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model

from dtn_protocol.tasks import TaskKind
from portal.containers import tasks
from portal.containers.models import Container
from portal.grants.models import AlreadyGranted, Grant
from portal.lib.errors import Refused

# An offline receiver syncs at its first heartbeat anyway: the ask need not outlive that by much.
SYNC_GRANTS_TTL = timedelta(minutes=2)


class GrantRefused(Refused):
    pass


def given(user):
    return Grant.objects.filter(receiver__owner=user).select_related("receiver", "grantee")


def received(user):
    return Grant.objects.filter(grantee=user).select_related("receiver", "receiver__owner")


def visible(user):
    """Grants a person may look at: those they gave and those they hold."""
    return Grant.objects.filter(receiver__owner=user) | Grant.objects.filter(grantee=user)


def grant(owner, grantee_username: str, receiver_id) -> Grant:
    receiver = Container.objects.own_receivers(owner).filter(pk=receiver_id).first() if receiver_id else None
    if receiver is None:
        raise GrantRefused("receiver", "You have no receiver container with that ID.")
    grantee = get_user_model().objects.filter(username=(grantee_username or "").strip(), is_active=True).first()
    if grantee is None:
        raise GrantRefused("grantee", f"There is no user named '{(grantee_username or '').strip()[:150]}'.")
    try:
        issued = Grant.issue(receiver, grantee)
    except AlreadyGranted as exc:
        raise GrantRefused("grantee", f"{exc}; revoke it first to issue new keys.", status=409) from None
    tell_receiver(receiver)
    return issued


def revoke(grant: Grant) -> bool:
    """Revoke (see Grant.revoke) and have the receiver stop serving the key now."""
    changed = grant.revoke()
    if changed:
        tell_receiver(grant.receiver)
    return changed


def tell_receiver(receiver: Container) -> None:
    """Ask the receiver's agent to fetch its grants now (side channel `sync_grants`), so a new grant is
    served and a revoked key refused within seconds rather than at its next heartbeat. One pending ask
    is enough: it fetches whatever the grants are by then."""
    if not tasks.pending(receiver, kind=TaskKind.SYNC_GRANTS):
        tasks.ask(receiver, TaskKind.SYNC_GRANTS, {}, ttl=SYNC_GRANTS_TTL)
