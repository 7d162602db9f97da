"""Every change of a command's state is one conditional UPDATE allowed by the protocol's
TRANSITIONS (queue.change_state), and a transfer follows its latest attempt (queue.carry)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from portal.transfers import queue
from portal.transfers.models import Command, Transfer
from tests.portal.sending import HAND_S3, send


def test_a_change_the_protocol_does_not_list_is_refused_before_the_database_is_asked(queued):
    command = queued()
    with pytest.raises(queue.IllegalTransition, match="cannot go from queued to running"):
        queue.change_state(command.pk, "queued", "running", now=timezone.now())
    command.refresh_from_db()
    assert command.state == "queued"


def test_a_finished_command_is_stamped_and_gives_up_its_lease_but_keeps_its_holders_name(alice_sender, queued):
    command = queued()
    queue.claim_next(alice_sender, "inst-1")
    now = timezone.now()
    assert queue.change_state(command.pk, "claimed", "failed", now=now, reason="agent_error") == 1
    command.refresh_from_db()
    assert (command.state, command.finished_at, command.lease_expires_at) == ("failed", now, None)
    # A repeat of the agent's last report is recognised by it.
    assert command.lease_holder == "inst-1"


def test_a_command_back_in_the_queue_belongs_to_nobody(alice_sender, queued):
    command = queued()
    queue.claim_next(alice_sender, "inst-1")
    assert queue.change_state(command.pk, frozenset({"claimed", "running"}), "queued", now=timezone.now()) == 1
    command.refresh_from_db()
    assert (command.state, command.lease_holder, command.lease_expires_at, command.finished_at) == (
        "queued", "", None, None)


def test_a_change_someone_else_made_first_changes_nothing(alice_sender, queued):
    command = queued()
    queue.claim_next(alice_sender, "inst-1")
    now = timezone.now()
    assert queue.change_state(command.pk, "claimed", "canceled", now=now,
                              where={"lease_holder": "inst-2"}) == 0
    assert queue.change_state(command.pk, "queued", "canceled", now=now) == 0
    command.refresh_from_db()
    assert command.state == "claimed"


def test_an_agent_cannot_report_a_command_back_into_the_queue(alice_sender, queued):
    command = queued()
    queue.claim_next(alice_sender, "inst-1")
    with pytest.raises(queue.IllegalTransition, match="cannot go from claimed to queued") as refused:
        queue.report(command, "inst-1", "queued")
    assert refused.value.field == "state"


def test_an_attempt_that_is_no_longer_the_latest_does_not_speak_for_its_transfer(alice, alice_sender):
    transfer = send(alice, alice_sender, s3=HAND_S3)
    first = transfer.latest_command
    queue.request_stop(first)
    second = queue.restart(Transfer.objects.get(pk=transfer.pk))
    with pytest.raises(queue.IllegalTransition):
        queue.request_stop(first)  # finished: nothing to carry
    assert queue.carry(Command.objects.get(pk=first.pk)) is None
    carried = queue.carry(second)
    assert carried is not None and carried.latest_command_id == second.pk and carried.state == "queued"
