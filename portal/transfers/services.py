"""Sending and restarting: one place for the send page and the API."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.db import transaction

from portal.containers.models import Container
from portal.grants.models import Grant
from portal.lib import crypto
from portal.lib.errors import Refused
from portal.transfers import queue, validation
from portal.transfers.choices import DestinationKind, NetworkCheckMode
from portal.transfers.models import Command, Transfer

log = logging.getLogger(__name__)

class SendRefused(Refused):
    pass


@dataclass
class SendRequest:
    """A send, every field already through portal.transfers.validation."""

    sender_id: object
    sources: list[str]
    receiver_id: object = None
    s3: dict | None = None  # host, port, tls, bucket, access_key, secret_key
    prefix: str = ""
    verify_checksums: bool = validation.DEFAULT_VERIFY_CHECKSUMS
    overwrite: str = validation.DEFAULT_OVERWRITE
    bandwidth_limit: str = ""
    label: str = ""
    network_check: str = NetworkCheckMode.ENFORCE
    tuning: dict = field(default_factory=dict)


def send(owner, request: SendRequest) -> Transfer:
    sender = Container.objects.own_senders(owner).filter(pk=request.sender_id).first()
    if sender is None:
        raise SendRefused("sender", "You have no sender container with that ID.")
    if request.receiver_id:
        grant = Grant.objects.grant_for(owner, request.receiver_id)
        destination = {
            "destination_kind": DestinationKind.CONTAINER, "receiver": grant.receiver, "grant": grant,
            "receiver_name": grant.receiver.name, "receiver_owner_name": grant.receiver.owner.username,
            "bucket": grant.bucket,
        }
    else:
        s3 = request.s3
        destination = {
            "destination_kind": DestinationKind.S3, "s3_host": s3["host"], "s3_port": s3["port"],
            "s3_tls": s3["tls"], "bucket": s3["bucket"], "s3_access_key": s3["access_key"],
            "s3_secret_key_encrypted": crypto.encrypt(s3["secret_key"]),
        }
    with transaction.atomic():
        transfer = Transfer.objects.create(
            owner=owner, sender=sender, sources=request.sources, prefix=request.prefix,
            verify_checksums=request.verify_checksums, overwrite=request.overwrite,
            bandwidth_limit=request.bandwidth_limit, label=request.label,
            network_check_mode=request.network_check, tuning=request.tuning, **destination)
        queue.enqueue_transfer(transfer)
    log.info("transfer %s queued on container %s (%s destination)", transfer.pk, sender.pk,
             transfer.destination_kind)
    return transfer


def restart(transfer: Transfer) -> Command:
    """A new attempt. For a receiver container the grant is looked up again: a
    revoked grant refuses the restart, a new grant (new keys, new bucket) is used."""
    if transfer.destination_kind == DestinationKind.CONTAINER:
        if transfer.receiver_id is None:
            raise SendRefused("receiver", "The receiver container was deleted; send again to another one.",
                              status=409)
        grant = Grant.objects.usable_by(transfer.owner).filter(receiver_id=transfer.receiver_id).first()
        if grant is None:
            raise SendRefused("receiver", f"Your grant to '{transfer.receiver_name}' was revoked; "
                                          "ask its owner for a new one.", status=409)
        if grant.pk != transfer.grant_id:
            Transfer.objects.filter(pk=transfer.pk).update(grant=grant, bucket=grant.bucket)
            transfer.grant, transfer.bucket = grant, grant.bucket
    command = queue.restart(transfer)
    log.info("transfer %s restarted as command %s", transfer.pk, command.pk)
    return command


def owned_transfers(user):
    return Transfer.objects.filter(owner=user)
