"""Listening to portal.transfers: the network check an attempt began with, as its
agent reported it, is recorded as a check of its own and becomes the transfer's."""

from __future__ import annotations

from django.dispatch import receiver

from portal.netcheck import services
from portal.transfers.signals import network_check_reported


@receiver(network_check_reported, dispatch_uid="netcheck.on_network_check_reported")
def on_network_check_reported(sender, transfer, command, report, **kwargs):
    services.record_for_transfer(transfer, command, report)
