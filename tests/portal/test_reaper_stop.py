from datetime import timedelta

from django.utils import timezone

from dtn_protocol.failures import FailureReason
from dtn_protocol.states import CommandState
from portal.transfers import queue, reaper
from portal.transfers.models import Command


def test_a_stopped_command_whose_agent_went_silent_stays_stopped(alice_sender, queued):
    command = queued()
    claimed = queue.claim_next(alice_sender, "inst-1")
    queue.request_stop(claimed)
    Command.objects.filter(pk=command.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    reaper.reap_expired_leases()
    command.refresh_from_db()
    assert command.state == CommandState.CANCELED
    assert command.reason == FailureReason.CANCELED_BY_USER
    assert queue.claim_next(alice_sender, "inst-2") is None
