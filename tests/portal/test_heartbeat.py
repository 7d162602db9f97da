"""POST /api/agent/v1/heartbeat: the agent says it is alive and what it runs;
the server answers with the clocks it chose and the failure reasons."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from dtn_protocol.failures import FailureReason
from portal.containers.models import Container

URL = "/api/agent/v1/heartbeat"
INVALID_AGENT = {"error": "invalid agent token", "field": None}

BEAT = {
    "instance_id": "inst-1",
    "agent_version": "0.1.0",
    "rclone_version": "v1.75.2",
    "hostname": "bob-host",
    "disk_free_bytes": 987654321,
    "endpoint": "https://bob-dtn.example.org:9443",
    "health": {"rclone": "ok", "s3": "ok"},
}


def agent(raw_token) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_token}")
    return client


def test_it_records_what_the_agent_reports(bob_receiver):
    before = timezone.now()
    response = agent(bob_receiver.raw_token).post(URL, BEAT, format="json")
    assert response.status_code == 200

    bob_receiver.refresh_from_db()
    assert bob_receiver.last_seen_at >= before
    assert bob_receiver.agent_version == "0.1.0"
    assert bob_receiver.rclone_version == "v1.75.2"
    assert bob_receiver.hostname == "bob-host"
    assert bob_receiver.disk_free_bytes == 987654321
    assert bob_receiver.endpoint == "https://bob-dtn.example.org:9443"
    assert bob_receiver.health == {"rclone": "ok", "s3": "ok"}
    assert bob_receiver.online


def test_it_answers_with_the_server_chosen_clocks_and_the_failure_reasons(settings, alice_agent, alice_sender):
    settings.DTN_HEARTBEAT_SECONDS = 7
    settings.DTN_CLAIM_HOLD_SECONDS = 11
    settings.DTN_LEASE_SECONDS = 42
    response = alice_agent.post(URL, {"instance_id": "inst-1"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["container_id"] == str(alice_sender.id)
    assert body["role"] == "sender"
    assert body["heartbeat_seconds"] == 7
    assert body["claim_hold_seconds"] == 11
    assert body["lease_seconds"] == 42
    assert body["failure_reasons"] == [reason.value for reason in FailureReason]
    assert abs(parse_datetime(body["server_time"]) - timezone.now()) < timedelta(minutes=1)


def test_a_later_heartbeat_moves_last_seen_forward(alice_agent, alice_sender):
    long_ago = timezone.now() - timedelta(hours=2)
    Container.objects.filter(pk=alice_sender.pk).update(last_seen_at=long_ago)
    alice_agent.post(URL, {}, format="json")
    alice_sender.refresh_from_db()
    assert alice_sender.last_seen_at > long_ago + timedelta(hours=1)


def test_a_heartbeat_keeps_what_it_does_not_mention(bob_receiver):
    client = agent(bob_receiver.raw_token)
    client.post(URL, BEAT, format="json")
    client.post(URL, {"agent_version": "0.2.0"}, format="json")
    bob_receiver.refresh_from_db()
    assert bob_receiver.agent_version == "0.2.0"
    assert bob_receiver.endpoint == "https://bob-dtn.example.org:9443"
    assert bob_receiver.disk_free_bytes == 987654321


def test_a_heartbeat_changes_only_its_own_container(alice_agent, alice_sender, charlie_sender):
    alice_agent.post(URL, BEAT, format="json")
    charlie_sender.refresh_from_db()
    assert charlie_sender.last_seen_at is None
    assert charlie_sender.agent_version == ""
    assert charlie_sender.endpoint == ""


def test_it_refuses_a_negative_disk_size_and_records_nothing(alice_agent, alice_sender):
    response = alice_agent.post(URL, {**BEAT, "disk_free_bytes": -1}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "disk_free_bytes"
    alice_sender.refresh_from_db()
    assert alice_sender.last_seen_at is None
    assert alice_sender.agent_version == ""


def test_it_refuses_an_overlong_version(alice_agent, alice_sender):
    response = alice_agent.post(URL, {"agent_version": "x" * 41}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "agent_version"
    alice_sender.refresh_from_db()
    assert alice_sender.last_seen_at is None


def test_it_cannot_change_the_role_or_the_owner(alice_agent, alice_sender, bob):
    response = alice_agent.post(URL, {"role": "receiver", "owner": bob.pk, "name": "renamed"}, format="json")
    assert response.status_code == 200
    alice_sender.refresh_from_db()
    assert alice_sender.role == "sender"
    assert alice_sender.name == "alice-dtn"
    assert alice_sender.owner.username == "alice"


def test_it_needs_an_agent_token(db, alice_sender):
    response = APIClient().post(URL, BEAT, format="json")
    assert response.status_code == 401
    assert response.json() == INVALID_AGENT
    assert response["WWW-Authenticate"] == 'Bearer realm="agent"'
    alice_sender.refresh_from_db()
    assert alice_sender.last_seen_at is None


def test_every_bad_agent_token_gets_the_same_401(alice_sender):
    raw = alice_sender.raw_token
    lookup, secret = raw[len("dtn_agent_"):].split("_", 1)
    bad = [
        "dtn_agnt_" + lookup + "_" + secret,          # wrong prefix
        "dtn_agent_" + lookup + "_" + secret[::-1],   # wrong secret
        "dtn_agent_ffffffffffff_" + secret,           # unknown container
        "dtn_pat_" + lookup + "_" + secret,           # the personal prefix
        "dtn_agent_",
        raw + " extra",
    ]
    for token in bad:
        response = agent(token).post(URL, BEAT, format="json")
        assert (token, response.status_code, response.json()) == (token, 401, INVALID_AGENT)
    alice_sender.refresh_from_db()
    assert alice_sender.last_seen_at is None


def test_a_session_is_not_an_agent(client, alice, alice_sender):
    client.force_login(alice)
    response = client.post(URL, BEAT, content_type="application/json")
    assert response.status_code == 401
    alice_sender.refresh_from_db()
    assert alice_sender.last_seen_at is None


def test_it_only_takes_a_post(alice_agent, alice_sender):
    assert alice_agent.get(URL).status_code == 405
    alice_sender.refresh_from_db()
    assert alice_sender.last_seen_at is None


def test_every_bad_agent_token_costs_one_hmac(monkeypatch, alice_sender):
    """Timing must not tell a wrong prefix from an unknown container or a wrong secret."""
    from portal.lib import tokens

    lookup = alice_sender.token_lookup
    real = tokens.digest
    for raw in ("dtn_pat_" + lookup + "_secret", "dtn_agent_" + lookup + "_wrong", "dtn_agent_ffffffffffff_x", ""):
        calls = []
        monkeypatch.setattr(tokens, "digest", lambda secret: calls.append(secret) or real(secret))
        assert agent(raw).post(URL, {}, format="json").status_code == 401
        assert (raw, len(calls)) == (raw, 1)
