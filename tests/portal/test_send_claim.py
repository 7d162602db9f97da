"""Claiming a transfer command: the claim answer (and only the claim answer)
carries the destination with its keys, taken from the grant or from the
encrypted hand-entered keys. A grant revoked by then fails the command
(`grant_revoked`) and its keys never leave the portal."""

from __future__ import annotations

import pytest

from portal.containers.models import Container
from portal.grants.models import Grant
from portal.transfers.models import Command, Transfer
from tests.portal.conftest import agent_client
from tests.portal.sending import (
    BOB_CERT_PEM,
    BOB_CERT_SHA256,
    BOB_ENDPOINT,
    HAND_S3,
    HAND_SECRET,
    checked_in,
    claim,
    grant,
    report,
    send,
)

pytestmark = pytest.mark.usefixtures("agent_threads_db")


@pytest.fixture
def granted(alice, bob_receiver):
    checked_in(bob_receiver)
    return grant(bob_receiver, alice)


def test_the_claim_answer_carries_the_destination_and_the_grants_keys(alice, alice_agent, alice_sender,
                                                                      bob_receiver, granted):
    transfer = send(alice, alice_sender, receiver=bob_receiver, sources=["data/run-17", "notes.txt"],
                    prefix="from-alice/run-17", bandwidth_limit="50M", label="run 17")
    response = claim(alice_agent)
    assert response.status_code == 201
    body = response.json()
    assert body["kind"] == "transfer"
    assert body["payload"] == {
        "transfer_id": str(transfer.pk),
        "sources": ["data/run-17", "notes.txt"],
        "destination": {
            "kind": "receiver", "endpoint": BOB_ENDPOINT, "bucket": granted.bucket, "prefix": "from-alice/run-17",
            "access_key": granted.access_key, "secret_key": granted.secret_key(), "tls": True,
            "certificate_pem": BOB_CERT_PEM, "certificate_sha256": BOB_CERT_SHA256,
            "free_bytes": bob_receiver.disk_free_bytes,
            # What the receiver's heartbeat said of its filesystem's names (none here).
            "names": {},
        },
        "options": {"verify_checksums": True, "overwrite": "update_changed", "bandwidth_limit": "50M",
                    "label": "run 17", "network_check": "enforce"},
    }


def test_the_keys_are_never_stored_in_the_command(alice, alice_agent, alice_sender, bob_receiver, granted):
    send(alice, alice_sender, receiver=bob_receiver)
    claim(alice_agent)
    command = Command.objects.get()
    assert "destination" not in command.payload
    assert granted.secret_key() not in str(Command.objects.values().get())


def test_a_plain_http_receiver_is_reached_without_tls_where_the_portal_allows_it(
        alice, alice_agent, alice_sender, bob_receiver, granted, settings):
    settings.DTN_ALLOW_PLAIN_ENDPOINTS = True
    Container.objects.filter(pk=bob_receiver.pk).update(endpoint="http://10.0.0.5:9000", certificate_pem="",
                                                        certificate_sha256="")
    send(alice, alice_sender, receiver=bob_receiver)
    destination = claim(alice_agent).json()["payload"]["destination"]
    assert (destination["endpoint"], destination["tls"]) == ("http://10.0.0.5:9000", False)


def test_a_receiver_with_a_pinned_certificate_is_never_reached_over_plain_http(
        alice, alice_agent, alice_sender, bob_receiver, granted, settings):
    settings.DTN_ALLOW_PLAIN_ENDPOINTS = True
    checked_in(bob_receiver, endpoint="http://10.0.0.5:9000")
    transfer = send(alice, alice_sender, receiver=bob_receiver)
    assert claim(alice_agent).status_code == 204
    transfer.refresh_from_db()
    assert transfer.fatal_reason == "destination_refused" and "pinned certificate" in transfer.fatal_message


def test_the_endpoint_is_the_one_the_receiver_reports_at_claim_time(alice, alice_agent, alice_sender,
                                                                     bob_receiver, granted):
    send(alice, alice_sender, receiver=bob_receiver)
    checked_in(bob_receiver, endpoint="https://bob-new-address.example.org:9443")
    assert claim(alice_agent).json()["payload"]["destination"]["endpoint"] == \
        "https://bob-new-address.example.org:9443"


def test_hand_entered_keys_come_back_decrypted_to_the_agent_only(alice, alice_agent, alice_sender):
    transfer = send(alice, alice_sender, s3=HAND_S3, prefix="in")
    body = claim(alice_agent).json()
    assert body["payload"]["destination"] == {
        "kind": "s3", "endpoint": "http://s3.example.org:9000", "bucket": "alice-archive", "prefix": "in",
        "access_key": "AKIAHANDENTERED01", "secret_key": HAND_SECRET, "tls": False,
        "certificate_pem": None, "certificate_sha256": None}
    assert HAND_SECRET not in str(Transfer.objects.values().get(pk=transfer.pk))


def test_a_resumed_claim_gets_the_keys_again(alice, alice_agent, alice_sender, bob_receiver, granted):
    send(alice, alice_sender, receiver=bob_receiver)
    first = claim(alice_agent, "inst-1").json()
    report(alice_agent, first["command_id"], "running", "inst-1")
    again = claim(alice_agent, "inst-1")
    assert again.status_code == 201
    assert again.json()["command_id"] == first["command_id"]
    assert again.json()["payload"]["destination"]["secret_key"] == granted.secret_key()


def test_another_instance_gets_no_keys_while_the_first_holds_the_command(alice, alice_agent, alice_sender,
                                                                        bob_receiver, granted):
    send(alice, alice_sender, receiver=bob_receiver)
    claim(alice_agent, "inst-1")
    response = claim(alice_agent, "inst-2")
    assert response.status_code == 204
    assert response.content == b""


def test_another_containers_agent_never_gets_the_keys(alice, charlie_agent, alice_sender, bob_receiver, granted):
    send(alice, alice_sender, receiver=bob_receiver)
    assert claim(charlie_agent).status_code == 204


def test_the_receivers_own_agent_cannot_claim_a_senders_command(alice, alice_sender, bob_receiver, granted):
    send(alice, alice_sender, receiver=bob_receiver)
    assert claim(agent_client(bob_receiver)).status_code == 204
    assert Command.objects.get().state == "queued"


def test_a_grant_revoked_before_the_claim_fails_the_command_without_its_keys(alice, alice_agent, alice_sender,
                                                                             bob_receiver, granted):
    transfer = send(alice, alice_sender, receiver=bob_receiver)
    # Revoked in the instant between queueing and claiming, so revoke()'s own
    # sweep of queued commands did not see it: the claim must check again.
    Grant.objects.filter(pk=granted.pk).update(revoked_at=granted.created_at)
    response = claim(alice_agent)
    assert response.status_code == 204
    assert granted.secret_key() not in response.content.decode()
    command = Command.objects.get()
    assert (command.state, command.reason) == ("failed", "grant_revoked")
    assert command.attempt == 1
    transfer.refresh_from_db()
    assert (transfer.state, transfer.fatal_reason) == ("failed", "grant_revoked")


def test_after_failing_a_revoked_command_the_claim_hands_out_the_next_one(alice, alice_agent, alice_sender,
                                                                          bob_receiver, granted):
    doomed = send(alice, alice_sender, receiver=bob_receiver)
    fine = send(alice, alice_sender, s3=HAND_S3)
    Grant.objects.filter(pk=granted.pk).update(revoked_at=granted.created_at)
    body = claim(alice_agent).json()
    assert body["payload"]["transfer_id"] == str(fine.pk)
    doomed.refresh_from_db()
    assert doomed.state == "failed"


def test_a_running_command_whose_grant_was_revoked_gets_no_keys_on_resume(alice, alice_agent, alice_sender,
                                                                           bob_receiver, granted):
    transfer = send(alice, alice_sender, receiver=bob_receiver)
    command_id = claim(alice_agent, "inst-1").json()["command_id"]
    report(alice_agent, command_id, "running", "inst-1")
    granted.revoke()
    response = claim(alice_agent, "inst-1")
    assert response.status_code == 204
    transfer.refresh_from_db()
    assert (transfer.state, transfer.latest_command.reason) == ("failed", "grant_revoked")


def test_a_receiver_deleted_before_the_claim_fails_the_command(alice, alice_agent, alice_sender, bob_receiver,
                                                               granted):
    transfer = send(alice, alice_sender, receiver=bob_receiver)
    # What the deletion leaves (foreign keys set to null), as if it raced the
    # claim past the sweep of queued commands: the claim still refuses.
    Transfer.objects.filter(pk=transfer.pk).update(receiver=None, grant=None)
    assert claim(alice_agent).status_code == 204
    transfer.refresh_from_db()
    assert transfer.latest_command.reason == "grant_revoked"


def test_a_receiver_without_an_endpoint_fails_the_command_as_unreachable(alice, alice_agent, alice_sender,
                                                                         bob_receiver, granted):
    transfer = send(alice, alice_sender, receiver=bob_receiver)
    Container.objects.filter(pk=bob_receiver.pk).update(endpoint="")
    assert claim(alice_agent).status_code == 204
    transfer.refresh_from_db()
    assert (transfer.state, transfer.latest_command.reason) == ("failed", "receiver_unreachable")


def test_claiming_makes_the_transfer_active_and_logs_it(alice, alice_agent, alice_sender, bob_receiver, granted):
    transfer = send(alice, alice_sender, receiver=bob_receiver)
    claim(alice_agent)
    transfer.refresh_from_db()
    assert transfer.state == "active"
    assert transfer.started_at is not None
    assert list(transfer.events.values_list("kind", flat=True)) == ["queued", "started"]


def test_a_command_that_is_no_transfer_is_answered_as_before(alice_agent, queued):
    queued(payload={"n": 1}, kind="network_check")
    body = claim(alice_agent).json()
    assert body["payload"] == {"n": 1}


def test_a_receivers_word_on_its_names_reaches_senders_only_as_typed():
    from portal.grants.models import receiver_names

    said = {"names": {"case_insensitive": True, "normalization_insensitive": False, "name_max": 143,
                      "keys": "rclone", "extra": "dropped"}}
    assert receiver_names(said) == {"case_insensitive": True, "normalization_insensitive": False, "name_max": 143,
                                    "keys": "rclone"}
    assert receiver_names({"names": {"case_insensitive": "yes", "name_max": True, "keys": "other"}}) == {}
    assert receiver_names({}) == {} and receiver_names(None) == {}
