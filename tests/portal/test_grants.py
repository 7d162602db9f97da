"""Bob grants Alice (by username) the right to send to one of his receiver
containers, sees his grants and revokes them: through /api/v1/grants and the
page /portal/grants/. Each grant gets its own bucket and S3 key pair."""

from __future__ import annotations

import re
import uuid

import pytest

from portal.grants.models import Grant, bucket_name_for
from portal.transfers import validation
from tests.portal.conftest import register
from tests.portal.sending import checked_in, grant, send

URL = "/api/v1/grants"


def grant_alice(client, receiver, username="alice"):
    return client.post(URL, {"grantee": username, "receiver": str(receiver.pk)}, format="json")


# --- Creating a grant -----------------------------------------------------------------------------


def test_bob_grants_alice_by_username(bob_api, alice, bob_receiver):
    response = grant_alice(bob_api, bob_receiver)
    assert response.status_code == 201
    body = response.json()
    the_grant = Grant.objects.get(pk=body["grant_id"])
    assert (the_grant.receiver, the_grant.grantee, the_grant.revoked_at) == (bob_receiver, alice, None)
    assert body["receiver_id"] == str(bob_receiver.pk)
    assert body["receiver_name"] == "bob-dtn"
    assert body["receiver_owner"] == "bob"
    assert body["grantee"] == "alice"
    assert body["bucket"] == the_grant.bucket
    assert body["access_key"] == the_grant.access_key
    assert body["active"] is True
    assert body["revoked_at"] is None


def test_the_answer_never_holds_the_secret_key(bob_api, alice, bob_receiver):
    body = grant_alice(bob_api, bob_receiver).json()
    the_grant = Grant.objects.get(pk=body["grant_id"])
    text = str(body)
    assert the_grant.secret_key() not in text
    assert the_grant.secret_key_encrypted not in text
    assert not {"secret_key", "secret_key_encrypted"} & set(body)


def test_each_grant_gets_its_own_keys_and_bucket(bob, alice, charlie, bob_receiver):
    first, second = grant(bob_receiver, alice), grant(bob_receiver, charlie)
    assert first.access_key != second.access_key
    assert first.secret_key() != second.secret_key()
    assert first.bucket != second.bucket
    assert first.bucket.startswith("alice-") and second.bucket.startswith("charlie-")


@pytest.mark.parametrize("username", ["alice", "Alice.Smith+lab@x", "xn--weird", "___", "a" * 150, "Ünïcode"])
def test_a_bucket_name_is_always_valid_for_s3(username):
    name = bucket_name_for(username)
    assert validation.bucket_name(name) == name
    assert not name.startswith(("xn--", "sthree-"))


def test_an_access_key_is_twenty_upper_case_characters(bob_receiver, alice):
    assert re.fullmatch(r"DTNG[A-Z0-9]{16}", grant(bob_receiver, alice).access_key)


def test_granting_someone_twice_is_a_conflict(bob_api, alice, bob_receiver):
    assert grant_alice(bob_api, bob_receiver).status_code == 201
    response = grant_alice(bob_api, bob_receiver)
    assert response.status_code == 409
    assert response.json()["field"] == "grantee"
    assert "already has a grant" in response.json()["error"]
    assert Grant.objects.count() == 1


def test_after_a_revoke_a_new_grant_gets_new_keys_and_bucket(bob_api, alice, bob_receiver):
    old = grant(bob_receiver, alice)
    old.revoke()
    body = grant_alice(bob_api, bob_receiver).json()
    new = Grant.objects.get(pk=body["grant_id"])
    assert (new.access_key, new.bucket) != (old.access_key, old.bucket)
    assert new.secret_key() != old.secret_key()


def test_an_unknown_username_is_a_field_error(bob_api, bob_receiver):
    response = grant_alice(bob_api, bob_receiver, username="nobody")
    assert response.status_code == 400
    assert response.json() == {"error": "There is no user named 'nobody'.", "field": "grantee"}


def test_an_inactive_person_cannot_be_granted(bob_api, alice, bob_receiver):
    alice.is_active = False
    alice.save()
    assert grant_alice(bob_api, bob_receiver).status_code == 400
    assert not Grant.objects.exists()


def test_only_my_own_receivers_can_be_granted(charlie_api, alice, bob_receiver):
    response = grant_alice(charlie_api, bob_receiver)
    assert response.status_code == 400
    assert response.json() == {"error": "You have no receiver container with that ID.", "field": "receiver"}
    assert not Grant.objects.exists()


def test_a_sender_container_cannot_be_granted(alice_api, bob, alice_sender):
    response = alice_api.post(URL, {"grantee": "bob", "receiver": str(alice_sender.pk)}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "receiver"


def test_a_container_of_role_both_can_be_granted(alice_api, bob, alice):
    both = register(alice, "alice-both", "both")
    assert alice_api.post(URL, {"grantee": "bob", "receiver": str(both.pk)}, format="json").status_code == 201


def test_a_grant_needs_both_fields(bob_api, bob_receiver):
    response = bob_api.post(URL, {"grantee": "alice"}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "receiver"


# --- Listing ----------------------------------------------------------------------------------------


def test_bob_lists_the_grants_he_gave_and_alice_those_she_received(bob_api, alice_api, alice, charlie, bob_receiver):
    to_alice, to_charlie = grant(bob_receiver, alice), grant(bob_receiver, charlie)
    given = bob_api.get(URL).json()
    assert {item["grant_id"] for item in given["given"]} == {str(to_alice.pk), str(to_charlie.pk)}
    assert given["received"] == []
    assert all("access_key" in item for item in given["given"])

    received = alice_api.get(URL).json()
    assert received["given"] == []
    [item] = received["received"]
    assert item["grant_id"] == str(to_alice.pk)
    assert item["receiver_id"] == str(bob_receiver.pk)
    assert item["bucket"] == to_alice.bucket
    # The sender needs no key: her agent gets it when it runs a transfer.
    assert "access_key" not in item


def test_revoked_grants_stay_in_the_lists(bob_api, alice, bob_receiver):
    the_grant = grant(bob_receiver, alice)
    the_grant.revoke()
    [item] = bob_api.get(URL).json()["given"]
    assert item["active"] is False
    assert item["revoked_at"] is not None


def test_an_outsider_sees_no_grants(charlie_api, alice, bob_receiver):
    grant(bob_receiver, alice)
    assert charlie_api.get(URL).json() == {"given": [], "received": []}


def test_a_grant_is_visible_to_its_giver_and_its_holder_only(bob_api, alice_api, charlie_api, alice, bob_receiver):
    the_grant = grant(bob_receiver, alice)
    url = f"{URL}/{the_grant.pk}"
    assert bob_api.get(url).json()["access_key"] == the_grant.access_key
    assert "access_key" not in alice_api.get(url).json()
    assert charlie_api.get(url).status_code == 404
    assert bob_api.get(f"{URL}/{uuid.uuid4()}").status_code == 404


# --- Revoking ---------------------------------------------------------------------------------------


def test_bob_revokes_a_grant_and_the_row_stays(bob_api, alice, bob_receiver):
    the_grant = grant(bob_receiver, alice)
    response = bob_api.post(f"{URL}/{the_grant.pk}/revoke")
    assert response.status_code == 200
    assert response.json()["active"] is False
    the_grant.refresh_from_db()
    assert the_grant.revoked_at is not None
    assert Grant.objects.filter(pk=the_grant.pk).exists()


def test_revoking_twice_changes_nothing(bob_api, alice, bob_receiver):
    the_grant = grant(bob_receiver, alice)
    first = bob_api.post(f"{URL}/{the_grant.pk}/revoke").json()["revoked_at"]
    second = bob_api.post(f"{URL}/{the_grant.pk}/revoke")
    assert second.status_code == 200
    assert second.json()["revoked_at"] == first


def test_the_grantee_cannot_revoke_and_an_outsider_cannot_either(alice_api, charlie_api, alice, bob_receiver):
    the_grant = grant(bob_receiver, alice)
    assert alice_api.post(f"{URL}/{the_grant.pk}/revoke").status_code == 404
    assert charlie_api.post(f"{URL}/{the_grant.pk}/revoke").status_code == 404
    the_grant.refresh_from_db()
    assert the_grant.is_active


def test_revoking_fails_the_queued_commands_to_that_receiver(bob_api, alice, bob, alice_sender, bob_receiver,
                                                              charlie, charlie_sender):
    checked_in(bob_receiver)
    to_alice, to_charlie = grant(bob_receiver, alice), grant(bob_receiver, charlie)
    alices = [send(alice, alice_sender, receiver=bob_receiver) for _ in range(2)]
    charlies = send(charlie, charlie_sender, receiver=bob_receiver)

    assert bob_api.post(f"{URL}/{to_alice.pk}/revoke").status_code == 200

    for transfer in alices:
        transfer.refresh_from_db()
        command = transfer.latest_command
        assert (command.state, command.reason) == ("failed", "grant_revoked")
        assert command.finished_at is not None
        assert (transfer.state, transfer.fatal_reason) == ("failed", "grant_revoked")
        assert transfer.events.filter(kind="failed", message__contains="grant_revoked").exists()
    charlies.refresh_from_db()
    assert charlies.state == "queued"
    assert charlies.latest_command.state == "queued"
    to_charlie.refresh_from_db()
    assert to_charlie.is_active


def test_revoking_leaves_finished_commands_as_they_were(bob_api, alice, alice_sender, bob_receiver):
    checked_in(bob_receiver)
    the_grant = grant(bob_receiver, alice)
    transfer = send(alice, alice_sender, receiver=bob_receiver)
    from portal.transfers import queue

    queue.request_stop(transfer.latest_command)
    bob_api.post(f"{URL}/{the_grant.pk}/revoke")
    transfer.refresh_from_db()
    assert (transfer.state, transfer.latest_command.state, transfer.latest_command.reason) == (
        "canceled", "canceled", "canceled_by_user")


def test_deleting_a_receiver_fails_the_sends_queued_to_it(bob_api, alice, alice_sender, bob_receiver):
    checked_in(bob_receiver)
    grant(bob_receiver, alice)
    transfer = send(alice, alice_sender, receiver=bob_receiver)
    assert bob_api.delete(f"/api/v1/containers/{bob_receiver.pk}").status_code == 204
    transfer.refresh_from_db()
    assert transfer.receiver is None and transfer.grant is None
    assert (transfer.state, transfer.latest_command.reason) == ("failed", "grant_revoked")
    # The record still says where it was going.
    assert (transfer.receiver_name, transfer.receiver_owner_name) == ("bob-dtn", "bob")


# --- Needs a person -----------------------------------------------------------------------------


def test_the_grants_api_needs_authentication(anon_api, alice, bob_receiver):
    the_grant = grant(bob_receiver, alice)
    assert anon_api.get(URL).status_code == 401
    assert anon_api.post(URL, {"grantee": "alice", "receiver": str(bob_receiver.pk)}, format="json").status_code == 401
    assert anon_api.post(f"{URL}/{the_grant.pk}/revoke").status_code == 401
    the_grant.refresh_from_db()
    assert the_grant.is_active


def test_an_agent_token_cannot_grant(bob_receiver, alice):
    from tests.portal.conftest import agent_client

    response = agent_client(bob_receiver).post(URL, {"grantee": "alice", "receiver": str(bob_receiver.pk)},
                                               format="json")
    assert response.status_code == 401
    assert not Grant.objects.exists()


# --- The page ---------------------------------------------------------------------------------------


def test_the_page_grants_alice(browser, bob, alice, bob_receiver):
    client = browser(bob)
    response = client.post("/portal/grants/", {"grantee": "alice", "receiver": str(bob_receiver.pk),
                                               "csrfmiddlewaretoken": client.csrf()}, follow=True)
    assert response.status_code == 200
    the_grant = Grant.objects.get()
    assert (the_grant.grantee, the_grant.receiver) == (alice, bob_receiver)
    page = response.content.decode()
    assert "alice may now send to bob-dtn" in page
    assert the_grant.bucket in page and the_grant.access_key in page
    assert the_grant.secret_key() not in page


def test_the_page_shows_a_field_error_beside_the_username(browser, bob, bob_receiver):
    client = browser(bob)
    response = client.post("/portal/grants/", {"grantee": "nobody", "receiver": str(bob_receiver.pk),
                                               "csrfmiddlewaretoken": client.csrf()})
    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="id_grantee-error"' in page
    assert "There is no user named &#x27;nobody&#x27;." in page
    assert not Grant.objects.exists()


def test_the_page_offers_only_my_receivers(browser, bob, alice, bob_receiver, charlie):
    mine_too = register(bob, "bob-both", "both")
    register(bob, "bob-sender", "sender")
    theirs = register(charlie, "charlie-receiver", "receiver")
    page = browser(bob).get("/portal/grants/").content.decode()
    assert str(bob_receiver.pk) in page and str(mine_too.pk) in page
    assert "bob-sender" not in page
    assert str(theirs.pk) not in page


def test_the_page_refuses_someone_elses_receiver(browser, charlie, alice, bob_receiver):
    client = browser(charlie)
    response = client.post("/portal/grants/", {"grantee": "alice", "receiver": str(bob_receiver.pk),
                                               "csrfmiddlewaretoken": client.csrf()})
    assert response.status_code == 400
    assert 'id="id_receiver-error"' in response.content.decode()
    assert not Grant.objects.exists()


def test_the_page_lists_given_and_received_grants(browser, bob, alice, bob_receiver):
    the_grant = grant(bob_receiver, alice)
    bobs = browser(bob).get("/portal/grants/").content.decode()
    assert "alice" in bobs and the_grant.access_key in bobs and "Revoke" in bobs
    alices = browser(alice).get("/portal/grants/").content.decode()
    assert str(bob_receiver.pk) in alices and the_grant.bucket in alices
    assert the_grant.access_key not in alices


def test_the_page_revokes_a_grant(browser, bob, alice, bob_receiver):
    the_grant = grant(bob_receiver, alice)
    client = browser(bob)
    response = client.post(f"/portal/grants/{the_grant.pk}/revoke", {"csrfmiddlewaretoken": client.csrf()},
                           follow=True)
    assert response.status_code == 200
    assert "Revoked alice" in response.content.decode()
    the_grant.refresh_from_db()
    assert not the_grant.is_active


def test_the_page_revokes_only_with_a_post_and_csrf(browser, bob, alice, bob_receiver):
    the_grant = grant(bob_receiver, alice)
    client = browser(bob)
    assert client.get(f"/portal/grants/{the_grant.pk}/revoke").status_code == 405
    assert client.post(f"/portal/grants/{the_grant.pk}/revoke").status_code == 403
    the_grant.refresh_from_db()
    assert the_grant.is_active


def test_the_page_cannot_revoke_someone_elses_grant(browser, alice, charlie, bob_receiver):
    the_grant = grant(bob_receiver, alice)
    for person in (alice, charlie):
        client = browser(person)
        assert client.post(f"/portal/grants/{the_grant.pk}/revoke",
                           {"csrfmiddlewaretoken": client.csrf()}).status_code == 404
    the_grant.refresh_from_db()
    assert the_grant.is_active


def test_the_page_needs_a_signed_in_person(client, db):
    response = client.get("/portal/grants/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
