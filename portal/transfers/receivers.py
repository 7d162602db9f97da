"""Listening to the apps below: a revoked grant fails the sends still queued under it,
in the revocation's own transaction (before, the grant reached into the queue)."""

from __future__ import annotations

from django.dispatch import receiver

from portal.grants.signals import grant_revoked
from portal.transfers import queue


@receiver(grant_revoked, dispatch_uid="transfers.on_grant_revoked")
def fail_sends_queued_under(sender, grant, **kwargs) -> int:
    return queue.fail_queued_under_grant(grant.pk, "the receiver's owner revoked the grant")
