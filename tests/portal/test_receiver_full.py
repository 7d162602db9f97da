"""A full receiver is named as such, from what its own heartbeats say."""

import pytest

from dtn_protocol.failures import FailureReason
from portal.containers.models import Container
from tests.portal.sending import HAND_S3, checked_in, claim, grant, report, send


@pytest.fixture
def running(alice, alice_sender, bob_receiver, alice_agent):
    checked_in(bob_receiver)
    grant(bob_receiver, alice)
    transfer = send(alice, alice_sender, receiver=bob_receiver)
    return transfer, claim(alice_agent).json()["command_id"]


def heartbeat_free(receiver, free):
    Container.objects.filter(pk=receiver.pk).update(disk_free_bytes=free)


@pytest.mark.parametrize("reported", ["rclone_error", "receiver_unreachable"])
def test_a_send_that_failed_into_a_full_receiver_says_receiver_full(alice_agent, bob_receiver, running, reported):
    transfer, command_id = running
    heartbeat_free(bob_receiver, 4096)
    report(alice_agent, command_id, "failed", reason=reported, message="big.bin: api error InternalError")
    transfer.refresh_from_db()
    assert transfer.fatal_reason == FailureReason.RECEIVER_FULL
    assert "4096 bytes free" in transfer.fatal_message and "big.bin" in transfer.fatal_message


def test_a_failure_with_room_left_keeps_the_senders_reason(alice_agent, bob_receiver, running):
    transfer, command_id = running
    heartbeat_free(bob_receiver, 50 * 2**30)
    report(alice_agent, command_id, "failed", reason="rclone_error", message="something else")
    transfer.refresh_from_db()
    assert (transfer.fatal_reason, transfer.fatal_message) == (FailureReason.RCLONE_ERROR, "something else")


def test_other_reasons_and_hand_entered_endpoints_are_left_alone(alice, alice_sender, alice_agent, bob_receiver,
                                                                running):
    transfer, command_id = running
    heartbeat_free(bob_receiver, 0)
    report(alice_agent, command_id, "failed", reason="auth_failed", message="bad keys")
    transfer.refresh_from_db()
    assert transfer.fatal_reason == FailureReason.AUTH_FAILED
    by_hand = send(alice, alice_sender, s3=HAND_S3)
    second = claim(alice_agent).json()["command_id"]
    report(alice_agent, second, "failed", reason="rclone_error", message="500")
    by_hand.refresh_from_db()
    assert by_hand.fatal_reason == FailureReason.RCLONE_ERROR
