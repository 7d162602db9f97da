"""GET /api/agent/v1/grants: a receiver's agent fetches the active grants of its
container with their keys, the one place a receiver gets them."""

from __future__ import annotations

from tests.portal.conftest import agent_client, register
from tests.portal.sending import grant

URL = "/api/agent/v1/grants"


def test_a_receiver_gets_its_active_grants_with_their_keys(bob_receiver, alice, charlie):
    to_alice, to_charlie = grant(bob_receiver, alice), grant(bob_receiver, charlie)
    response = agent_client(bob_receiver).get(URL)
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    by_id = {item["grant_id"]: item for item in response.json()["grants"]}
    assert set(by_id) == {str(to_alice.pk), str(to_charlie.pk)}
    item = by_id[str(to_alice.pk)]
    assert item["grantee"] == "alice"
    assert item["bucket"] == to_alice.bucket
    assert item["access_key"] == to_alice.access_key
    assert item["secret_key"] == to_alice.secret_key()
    assert item["created_at"]


def test_revoked_grants_are_left_out(bob_receiver, alice, charlie):
    revoked, kept = grant(bob_receiver, alice), grant(bob_receiver, charlie)
    revoked.revoke()
    grants = agent_client(bob_receiver).get(URL).json()["grants"]
    assert [item["grant_id"] for item in grants] == [str(kept.pk)]
    assert revoked.secret_key() not in str(grants)


def test_a_receiver_never_gets_another_receivers_grants(bob, bob_receiver, alice):
    other = register(bob, "bob-dtn-2", "receiver")
    grant(other, alice)
    assert agent_client(bob_receiver).get(URL).json() == {"grants": []}


def test_a_container_of_role_both_serves_its_grants(alice, bob):
    both = register(bob, "bob-both", "both")
    the_grant = grant(both, alice)
    [item] = agent_client(both).get(URL).json()["grants"]
    assert item["secret_key"] == the_grant.secret_key()


def test_a_sender_container_is_refused(alice_sender, bob_receiver, charlie):
    grant(bob_receiver, charlie)
    response = agent_client(alice_sender).get(URL)
    assert response.status_code == 403
    assert response.json() == {"error": "only receiver containers serve grants", "field": None}


def test_it_needs_an_agent_token(anon_api, bob_api, bob_receiver, alice):
    the_grant = grant(bob_receiver, alice)
    for client in (anon_api, bob_api):
        response = client.get(URL)
        assert response.status_code == 401
        assert the_grant.secret_key() not in response.content.decode()


def test_an_unchanged_set_answers_304_to_its_etag(bob_receiver, alice):
    grant(bob_receiver, alice)
    agent = agent_client(bob_receiver)
    first = agent.get(URL)
    etag = first["ETag"]
    again = agent.get(URL, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == etag


def test_a_new_grant_or_a_revoke_changes_the_etag(bob_receiver, alice, charlie):
    agent = agent_client(bob_receiver)
    empty = agent.get(URL)["ETag"]
    first = grant(bob_receiver, alice)
    one = agent.get(URL, HTTP_IF_NONE_MATCH=empty)
    assert one.status_code == 200 and one["ETag"] != empty
    grant(bob_receiver, charlie)
    two = agent.get(URL, HTTP_IF_NONE_MATCH=one["ETag"])
    assert two.status_code == 200 and len(two.json()["grants"]) == 2
    first.revoke()
    three = agent.get(URL, HTTP_IF_NONE_MATCH=two["ETag"])
    assert three.status_code == 200 and len(three.json()["grants"]) == 1
