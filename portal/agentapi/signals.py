from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from dtn_protocol.states import CommandState
from portal.agentapi.waiters import claims
from portal.transfers.models import Command


@receiver(post_save, sender=Command)
def wake_waiting_claim(sender, instance: Command, **kwargs):
    # Other processes learn of it from their sweeper within DTN_CLAIM_SWEEP_MS.
    if instance.state == CommandState.QUEUED:
        # After the commit, or the woken claim would not see the row yet.
        transaction.on_commit(lambda: claims.wake_threadsafe(instance.container_id))
