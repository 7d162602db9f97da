"""Work appearing for a container wakes its agent's held request in this process at once (other
processes' sweepers see it within DTN_CLAIM_SWEEP_MS). Each wakes after the commit, or the woken
request would not see the row yet."""

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from dtn_protocol.states import CommandState
from portal.agentapi.waiters import claims, tasks
from portal.containers.models import AgentTask
from portal.transfers.models import Command


@receiver(post_save, sender=Command)
def wake_waiting_claim(sender, instance: Command, **kwargs):
    if instance.state == CommandState.QUEUED:
        transaction.on_commit(lambda: claims.wake_threadsafe(instance.container_id))


@receiver(post_save, sender=AgentTask)
def wake_waiting_task_poll(sender, instance: AgentTask, created: bool, **kwargs):
    if created:
        transaction.on_commit(lambda: tasks.wake_threadsafe(instance.container_id))
