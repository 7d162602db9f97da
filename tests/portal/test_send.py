"""Send: Alice picks her sender container, names Bob's receiver by container ID
(which needs his grant) or an S3 endpoint by hand, the source paths, a prefix
and options. POST /api/v1/transfers and the page /portal/send/ do the same, with
the same rules (portal/transfers/validation.py)."""

from __future__ import annotations

import uuid

import pytest

from portal.transfers.models import Command, Transfer
from tests.portal.conftest import register
from tests.portal.sending import BOB_ENDPOINT, HAND_SECRET, checked_in, grant

URL = "/api/v1/transfers"
HAND = {"s3_host": "s3.example.org", "s3_port": 9000, "s3_tls": False, "s3_bucket": "alice-archive",
        "s3_access_key": "AKIAHANDENTERED01", "s3_secret_key": HAND_SECRET}


@pytest.fixture
def granted(alice, bob_receiver):
    """Bob's receiver has checked in and Bob granted Alice."""
    checked_in(bob_receiver)
    return grant(bob_receiver, alice)


def to_bob(alice_sender, bob_receiver, **fields):
    return {"sender": str(alice_sender.pk), "receiver": str(bob_receiver.pk), "sources": ["data/run-17"], **fields}


def by_hand(alice_sender, **fields):
    return {"sender": str(alice_sender.pk), "sources": ["data/run-17"], **HAND, **fields}


# --- By container ID ----------------------------------------------------------------------------


def test_alice_sends_to_bobs_container_by_its_id(alice_api, alice, alice_sender, bob_receiver, granted):
    response = alice_api.post(URL, to_bob(alice_sender, bob_receiver, sources=["data/run-17", "notes.txt"],
                                          prefix="from-alice/run-17", bandwidth_limit="50M",
                                          label="run 17 raw frames"), format="json")
    assert response.status_code == 201
    body = response.json()
    transfer = Transfer.objects.get(pk=body["transfer_id"])
    assert (transfer.owner, transfer.sender, transfer.receiver, transfer.grant) == (
        alice, alice_sender, bob_receiver, granted)
    assert body["state"] == "queued"
    assert body["label"] == "run 17 raw frames"
    assert body["source"] == {"container_id": str(alice_sender.pk), "container_name": "alice-dtn",
                              "paths": ["data/run-17", "notes.txt"]}
    assert body["destination"] == {"kind": "container", "container_id": str(bob_receiver.pk),
                                   "container_name": "bob-dtn", "owner": "bob", "endpoint": BOB_ENDPOINT,
                                   "tls": None, "bucket": granted.bucket, "prefix": "from-alice/run-17"}
    assert body["options"] == {"verify_checksums": True, "overwrite": "update_changed", "bandwidth_limit": "50M",
                               "network_check": "enforce", "tuning": {}}
    assert body["files"] == {"total": 0, "transferred": 0, "verified": 0, "skipped": 0, "failed": 0}
    assert body["attempts"] == 1


def test_sending_queues_the_first_command_in_the_senders_queue(alice_api, alice_sender, bob_receiver, granted):
    body = alice_api.post(URL, to_bob(alice_sender, bob_receiver, sources=["a.txt"], label="L"),
                          format="json").json()
    [command] = Command.objects.all()
    assert command.container == alice_sender
    assert (command.kind, command.state, command.attempt) == ("transfer", "queued", 0)
    assert str(command.transfer_id) == body["transfer_id"]
    assert body["commands"][0]["command_id"] == str(command.pk)
    assert body["command_state"] == "queued"
    # The queued command names what to send; where to and with which keys is
    # added only when an agent claims it.
    assert command.payload == {
        "transfer_id": body["transfer_id"], "sources": ["a.txt"],
        "options": {"verify_checksums": True, "overwrite": "update_changed", "bandwidth_limit": "", "label": "L",
                    "network_check": "enforce"}}


def test_the_options_are_carried_to_the_command(alice_api, alice_sender, bob_receiver, granted):
    alice_api.post(URL, to_bob(alice_sender, bob_receiver, verify_checksums=False, overwrite="skip_existing",
                               bandwidth_limit="1.5g", network_check="override", transfers=32,
                               chunk_size_mib=16), format="json")
    options = Command.objects.get().payload["options"]
    assert options == {"verify_checksums": False, "overwrite": "skip_existing", "bandwidth_limit": "1.5G",
                       "label": "", "network_check": "override", "transfers": 32, "chunk_size": 16 * 1024 * 1024}


@pytest.mark.parametrize("field, value", [("transfers", 0), ("transfers", 1000), ("upload_concurrency", "many"),
                                          ("chunk_size_mib", 1), ("network_check", "maybe")])
def test_tuning_overrides_out_of_bounds_are_refused_by_field(alice_api, alice_sender, bob_receiver, granted,
                                                             field, value):
    response = alice_api.post(URL, to_bob(alice_sender, bob_receiver, **{field: value}), format="json")
    assert response.status_code == 400 and response.json()["field"] == field
    assert not Command.objects.exists()


def test_sending_records_a_queued_event(alice_api, alice_sender, bob_receiver, granted):
    body = alice_api.post(URL, to_bob(alice_sender, bob_receiver), format="json").json()
    [event] = Transfer.objects.get(pk=body["transfer_id"]).events.all()
    assert (event.kind, event.source) == ("queued", "portal")


def test_without_a_grant_the_receiver_is_refused(alice_api, alice_sender, bob_receiver):
    checked_in(bob_receiver)
    response = alice_api.post(URL, to_bob(alice_sender, bob_receiver), format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "receiver"
    assert "no grant" in response.json()["error"]
    assert not Transfer.objects.exists() and not Command.objects.exists()


def test_an_unknown_or_revoked_or_not_receiving_container_gets_the_same_answer(
        alice_api, alice, alice_sender, bob_receiver, granted, bob, charlie_sender):
    no_grant = alice_api.post(URL, to_bob(alice_sender, bob_receiver) | {"receiver": str(uuid.uuid4())},
                              format="json").json()
    not_a_receiver = alice_api.post(URL, to_bob(alice_sender, charlie_sender), format="json").json()
    granted.revoke()
    revoked = alice_api.post(URL, to_bob(alice_sender, bob_receiver), format="json").json()
    assert no_grant == not_a_receiver == revoked
    assert not Transfer.objects.exists()


def test_a_grant_to_someone_else_does_not_let_alice_send(alice_api, alice_sender, bob_receiver, charlie):
    checked_in(bob_receiver)
    grant(bob_receiver, charlie)
    assert alice_api.post(URL, to_bob(alice_sender, bob_receiver), format="json").status_code == 400


def test_a_receiver_that_never_reported_its_endpoint_is_refused(alice_api, alice, alice_sender, bob_receiver):
    grant(bob_receiver, alice)
    response = alice_api.post(URL, to_bob(alice_sender, bob_receiver), format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "receiver"
    assert "has not reported its S3 endpoint" in response.json()["error"]


def test_the_sender_must_be_one_of_my_sender_containers(alice_api, alice, bob_receiver, granted, charlie_sender):
    own_receiver = register(alice, "alice-receiver", "receiver")
    for sender in (charlie_sender, own_receiver):
        response = alice_api.post(URL, to_bob(sender, bob_receiver), format="json")
        assert response.status_code == 400
        assert response.json() == {"error": "You have no sender container with that ID.", "field": "sender"}
    assert not Transfer.objects.exists()


def test_a_container_of_role_both_can_send(alice_api, alice, bob_receiver, granted):
    both = register(alice, "alice-both", "both")
    assert alice_api.post(URL, to_bob(both, bob_receiver), format="json").status_code == 201


# --- By hand ----------------------------------------------------------------------------------------


def test_alice_sends_to_an_s3_endpoint_entered_by_hand(alice_api, alice_sender):
    response = alice_api.post(URL, by_hand(alice_sender, prefix="incoming"), format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["destination"] == {"kind": "s3", "container_id": None, "container_name": None, "owner": None,
                                   "endpoint": "http://s3.example.org:9000", "tls": False,
                                   "bucket": "alice-archive", "prefix": "incoming"}
    transfer = Transfer.objects.get(pk=body["transfer_id"])
    assert (transfer.s3_host, transfer.s3_port, transfer.s3_tls) == ("s3.example.org", 9000, False)
    assert transfer.s3_access_key == "AKIAHANDENTERED01"
    assert HAND_SECRET not in transfer.s3_secret_key_encrypted
    assert HAND_SECRET not in response.content.decode()
    assert "AKIAHANDENTERED01" not in response.content.decode()
    assert HAND_SECRET not in str(Command.objects.get().payload)


def test_tls_is_on_unless_turned_off(alice_api, alice_sender):
    fields = by_hand(alice_sender, s3_port=443)
    del fields["s3_tls"]
    body = alice_api.post(URL, fields, format="json").json()
    assert body["destination"]["endpoint"] == "https://s3.example.org:443"
    assert body["destination"]["tls"] is True


def test_an_ipv6_host_is_written_in_brackets(alice_api, alice_sender):
    body = alice_api.post(URL, by_hand(alice_sender, s3_host="[2001:db8::1]", s3_tls=True), format="json").json()
    assert body["destination"]["endpoint"] == "https://[2001:db8::1]:9000"


@pytest.mark.parametrize("missing", ["s3_host", "s3_port", "s3_bucket", "s3_access_key", "s3_secret_key"])
def test_a_half_filled_endpoint_names_the_missing_field(alice_api, alice_sender, missing):
    fields = by_hand(alice_sender)
    del fields[missing]
    response = alice_api.post(URL, fields, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == missing
    assert not Transfer.objects.exists()


@pytest.mark.parametrize("field,value", [
    ("s3_host", "https://s3.example.org"), ("s3_host", "s3.example.org:9000"), ("s3_host", "s3 example"),
    ("s3_port", 0), ("s3_port", 70000), ("s3_bucket", "Alice_Archive"), ("s3_bucket", "ab"),
    ("s3_bucket", "192.168.1.1"), ("s3_access_key", "has space"), ("s3_secret_key", "tab\tinside"),
])
def test_a_bad_endpoint_value_is_a_field_error(alice_api, alice_sender, field, value):
    response = alice_api.post(URL, by_hand(alice_sender, **{field: value}), format="json")
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_a_refused_secret_is_not_quoted_back(alice_api, alice_sender):
    response = alice_api.post(URL, by_hand(alice_sender, s3_secret_key="Secret with\x07bell"), format="json")
    assert response.status_code == 400
    assert "Secret with" not in response.content.decode()


def test_a_receiver_and_an_endpoint_together_are_refused(alice_api, alice_sender, bob_receiver, granted):
    response = alice_api.post(URL, by_hand(alice_sender, receiver=str(bob_receiver.pk)), format="json")
    assert response.status_code == 400
    assert response.json() == {"error": "receiver: Name a receiver container or an S3 endpoint, not both.",
                               "field": "receiver"}


def test_a_destination_is_required(alice_api, alice_sender):
    response = alice_api.post(URL, {"sender": str(alice_sender.pk), "sources": ["a"]}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "receiver"


# --- Source paths, prefix and options --------------------------------------------------------------


@pytest.mark.parametrize("path,words", [
    ("/etc/passwd", "relative to your send folder"),
    ("data/../../etc", "cannot contain '..'"),
    ("..", "cannot contain '..'"),
    ("C:\\Users\\alice", "relative to your send folder"),
    ("data/\x01frame", "control characters"),
    ("line\nbreak", "control characters"),
    ("del\x7f", "control characters"),
    ("", "cannot be empty"),
])
def test_a_bad_source_path_is_a_field_error(alice_api, alice_sender, bob_receiver, granted, path, words):
    response = alice_api.post(URL, to_bob(alice_sender, bob_receiver, sources=["ok.txt", path]), format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == "sources"
    assert words in body["error"]
    assert not Transfer.objects.exists()


def test_a_nul_in_a_source_path_is_a_field_error(alice_api, alice_sender, bob_receiver, granted):
    response = alice_api.post(URL, to_bob(alice_sender, bob_receiver, sources=["a\x00b"]), format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "sources"


def test_source_paths_are_normalised_and_deduplicated(alice_api, alice_sender, bob_receiver, granted):
    body = alice_api.post(URL, to_bob(alice_sender, bob_receiver,
                                      sources=["./data//run-17/", "data/run-17", "notes.txt", "."]),
                          format="json").json()
    assert body["source"]["paths"] == ["data/run-17", "notes.txt", "."]


def test_at_least_one_source_is_needed(alice_api, alice_sender, bob_receiver, granted):
    response = alice_api.post(URL, to_bob(alice_sender, bob_receiver, sources=[]), format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "sources"


@pytest.mark.parametrize("prefix", ["/abs", "a/../b", "bad\x1bprefix"])
def test_a_bad_prefix_is_a_field_error(alice_api, alice_sender, bob_receiver, granted, prefix):
    response = alice_api.post(URL, to_bob(alice_sender, bob_receiver, prefix=prefix), format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "prefix"


@pytest.mark.parametrize("limit", ["fast", "50 MB", "-5M", "10Mi", "1e6"])
def test_a_bad_bandwidth_limit_is_a_field_error(alice_api, alice_sender, bob_receiver, granted, limit):
    response = alice_api.post(URL, to_bob(alice_sender, bob_receiver, bandwidth_limit=limit), format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "bandwidth_limit"


def test_an_unknown_overwrite_policy_is_a_field_error(alice_api, alice_sender, bob_receiver, granted):
    response = alice_api.post(URL, to_bob(alice_sender, bob_receiver, overwrite="delete_extra"), format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "overwrite"


def test_a_label_with_control_characters_is_a_field_error(alice_api, alice_sender, bob_receiver, granted):
    response = alice_api.post(URL, to_bob(alice_sender, bob_receiver, label="run\r\n17"), format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "label"


def test_sending_needs_a_person(anon_api, alice_sender, bob_receiver, granted):
    response = anon_api.post(URL, to_bob(alice_sender, bob_receiver), format="json")
    assert response.status_code == 401
    assert not Transfer.objects.exists()


def test_an_agent_token_cannot_send(alice_agent, alice_sender, bob_receiver, granted):
    assert alice_agent.post(URL, to_bob(alice_sender, bob_receiver), format="json").status_code == 401
    assert not Transfer.objects.exists()


# --- The page ---------------------------------------------------------------------------------------


def page_post(client, fields):
    return client.post("/portal/send/", {"csrfmiddlewaretoken": client.csrf(), **fields})


def test_the_page_has_a_labelled_field_for_every_input(browser, alice, alice_sender):
    page = browser(alice).get("/portal/send/").content.decode()
    for name in ("sender", "receiver", "s3_host", "s3_port", "s3_tls", "s3_bucket", "s3_access_key",
                 "s3_secret_key", "sources", "prefix", "verify_checksums", "overwrite", "bandwidth_limit", "label"):
        assert f'<label for="id_{name}">' in page, name
        assert f'id="id_{name}"' in page, name
    assert 'type="password" name="s3_secret_key"' in page


def test_the_page_offers_only_my_sender_containers(browser, alice, alice_sender, charlie_sender):
    register(alice, "alice-receiver", "receiver")
    page = browser(alice).get("/portal/send/").content.decode()
    assert str(alice_sender.pk) in page
    assert "alice-receiver" not in page
    assert str(charlie_sender.pk) not in page


def test_the_page_lists_the_receivers_granted_to_me(browser, alice, alice_sender, bob_receiver, granted):
    page = browser(alice).get("/portal/send/").content.decode()
    assert str(bob_receiver.pk) in page and granted.bucket in page and BOB_ENDPOINT in page


def test_the_page_sends_by_container_id(browser, alice, alice_sender, bob_receiver, granted):
    client = browser(alice)
    response = page_post(client, {"sender": str(alice_sender.pk), "receiver": str(bob_receiver.pk),
                                  "sources": "data/run-17\r\nnotes.txt\r\n", "prefix": "p", "verify_checksums": "on",
                                  "overwrite": "skip_existing", "bandwidth_limit": "10M", "label": "by page"})
    transfer = Transfer.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/portal/transfers/{transfer.pk}/"
    assert (transfer.sender, transfer.receiver, transfer.grant) == (alice_sender, bob_receiver, granted)
    assert transfer.sources == ["data/run-17", "notes.txt"]
    assert (transfer.prefix, transfer.verify_checksums, transfer.overwrite, transfer.bandwidth_limit,
            transfer.label) == ("p", True, "skip_existing", "10M", "by page")
    assert Command.objects.get().container == alice_sender


def test_an_unticked_checkbox_turns_verification_off(browser, alice, alice_sender, bob_receiver, granted):
    page_post(browser(alice), {"sender": str(alice_sender.pk), "receiver": str(bob_receiver.pk), "sources": "a",
                               "overwrite": "update_changed"})
    assert Transfer.objects.get().verify_checksums is False


def test_the_page_sends_to_an_endpoint_entered_by_hand(browser, alice, alice_sender):
    fields = {**HAND, "s3_tls": "on", "s3_port": "9000"}
    response = page_post(browser(alice), {"sender": str(alice_sender.pk), "sources": "a", "overwrite": "update_changed",
                                          **fields})
    assert response.status_code == 302
    transfer = Transfer.objects.get()
    assert (transfer.destination_kind, transfer.s3_host, transfer.s3_port, transfer.s3_tls) == (
        "s3", "s3.example.org", 9000, True)
    detail = browser(alice).get(response["Location"]).content.decode()
    assert "https://s3.example.org:9000" in detail
    assert HAND_SECRET not in detail


@pytest.mark.parametrize("sources,words", [
    ("/etc/passwd", "relative to your send folder"),
    ("ok\r\ndata/../../x", "cannot contain &#x27;..&#x27;"),
    ("bell\x07", "control characters"),
])
def test_the_page_shows_a_path_error_beside_the_sources_field(browser, alice, alice_sender, bob_receiver, granted,
                                                              sources, words):
    response = page_post(browser(alice), {"sender": str(alice_sender.pk), "receiver": str(bob_receiver.pk),
                                          "sources": sources, "overwrite": "update_changed"})
    assert response.status_code == 400
    page = response.content.decode()
    error = page.split('id="id_sources-error"', 1)[1].split("</div>", 1)[0]
    assert words in error
    assert not Transfer.objects.exists()


def test_the_page_does_not_show_the_secret_again_after_an_error(browser, alice, alice_sender):
    response = page_post(browser(alice), {"sender": str(alice_sender.pk), "sources": "/abs",
                                          "overwrite": "update_changed", **HAND})
    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="id_sources-error"' in page
    assert HAND_SECRET not in page
    assert 'value="s3.example.org"' in page  # the rest of the form is kept


def test_the_page_shows_a_missing_grant_beside_the_receiver_field(browser, alice, alice_sender, bob_receiver):
    checked_in(bob_receiver)
    response = page_post(browser(alice), {"sender": str(alice_sender.pk), "receiver": str(bob_receiver.pk),
                                          "sources": "a", "overwrite": "update_changed"})
    assert response.status_code == 400
    assert 'id="id_receiver-error"' in response.content.decode()


def test_the_page_shows_half_filled_endpoint_errors_field_by_field(browser, alice, alice_sender):
    response = page_post(browser(alice), {"sender": str(alice_sender.pk), "sources": "a",
                                          "overwrite": "update_changed", "s3_host": "s3.example.org"})
    assert response.status_code == 400
    page = response.content.decode()
    for name in ("s3_port", "s3_bucket", "s3_access_key", "s3_secret_key"):
        assert f'id="id_{name}-error"' in page, name
    assert 'id="id_s3_host-error"' not in page


def test_the_page_refuses_someone_elses_sender(browser, charlie, alice_sender, bob_receiver, granted):
    response = page_post(browser(charlie), {"sender": str(alice_sender.pk), "receiver": str(bob_receiver.pk),
                                            "sources": "a", "overwrite": "update_changed"})
    assert response.status_code == 400
    assert 'id="id_sender-error"' in response.content.decode()
    assert not Transfer.objects.exists()


def test_the_page_needs_csrf_and_a_signed_in_person(browser, client, alice, alice_sender, bob_receiver, granted):
    fields = {"sender": str(alice_sender.pk), "receiver": str(bob_receiver.pk), "sources": "a",
              "overwrite": "update_changed"}
    assert browser(alice).post("/portal/send/", fields).status_code == 403
    response = client.post("/portal/send/", fields)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert not Transfer.objects.exists()
