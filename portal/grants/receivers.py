"""Listening to portal.containers: a receiver deleted takes its grants with it."""

from django.db.models.signals import pre_delete
from django.dispatch import receiver

from portal.containers.models import Container


@receiver(pre_delete, sender=Container)
def retire_grants_of_deleted_receiver(sender, instance: Container, **kwargs):
    # The grants go with the container (cascade); revoking first fails the
    # commands queued to it now, rather than when a sender claims them.
    for grant in instance.grants.active():
        grant.revoke()
