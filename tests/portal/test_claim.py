"""POST /api/agent/v1/commands/next?wait=0: an agent instance claims the oldest
queued command of its container, one at a time, and gets its own back.

The claim view does its database work on the server's worker threads, so these
tests use committed data (`agent_threads_db`)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from portal.transfers import queue
from portal.transfers.models import Command

pytestmark = pytest.mark.usefixtures("agent_threads_db")

URL = "/api/agent/v1/commands/next?wait=0"


def claim(client, instance_id="inst-1"):
    return client.post(URL, {"instance_id": instance_id}, format="json")


def aged(command, minutes):
    """Give a command an explicit creation time (created_at is auto_now_add)."""
    Command.objects.filter(pk=command.pk).update(created_at=timezone.now() - timedelta(minutes=minutes))
    command.refresh_from_db()
    return command


def test_it_claims_the_oldest_queued_command(settings, alice_agent, queued):
    newer = aged(queued(payload={"n": "newer"}), 1)
    older = aged(queued(payload={"n": "older"}), 5)

    before = timezone.now()
    response = claim(alice_agent)
    assert response.status_code == 201
    body = response.json()
    assert body["command_id"] == str(older.id)
    assert body["payload"] == {"n": "older"}
    assert body["state"] == "claimed"
    assert body["attempt"] == 1
    assert body["cancel_requested"] is False
    assert set(body) >= {"command_id", "kind", "payload", "state", "attempt", "created_at", "lease_expires_at",
                         "cancel_requested", "progress"}

    older.refresh_from_db()
    assert older.state == "claimed"
    assert older.attempt == 1
    assert older.lease_holder == "inst-1"
    assert older.claimed_at >= before
    lease = timedelta(seconds=settings.DTN_LEASE_SECONDS)
    assert before + lease <= older.lease_expires_at <= timezone.now() + lease
    assert parse_datetime(body["lease_expires_at"]) == older.lease_expires_at

    newer.refresh_from_db()
    assert newer.state == "queued"
    assert newer.attempt == 0


def test_with_nothing_queued_it_answers_204(alice_agent, alice_sender):
    response = claim(alice_agent)
    assert response.status_code == 204
    assert response.content == b""
    assert Command.objects.count() == 0


def test_finished_commands_are_not_claimed(alice_agent, queued):
    done = [queued(state=state) for state in ("succeeded", "failed", "canceled")]
    assert claim(alice_agent).status_code == 204
    for command in done:
        state = command.state
        command.refresh_from_db()
        assert command.state == state
        assert command.attempt == 0


def test_a_second_instance_gets_nothing_while_the_first_holds_a_lease(alice_agent, queued):
    first = aged(queued(), 5)
    second = aged(queued(), 1)
    assert claim(alice_agent, "inst-1").json()["command_id"] == str(first.id)

    response = claim(alice_agent, "inst-2")
    assert response.status_code == 204
    second.refresh_from_db()
    assert second.state == "queued"
    assert second.lease_holder == ""
    first.refresh_from_db()
    assert first.lease_holder == "inst-1"


def test_a_running_command_also_blocks_other_instances(alice_agent, alice_sender, queued):
    first = aged(queued(), 5)
    queued()
    claim(alice_agent, "inst-1")
    queue.report(first, "inst-1", "running")
    assert claim(alice_agent, "inst-2").status_code == 204


def test_the_same_instance_gets_its_held_command_back(alice_agent, queued):
    command = aged(queued(), 5)
    queued()
    first = claim(alice_agent, "inst-1").json()
    Command.objects.filter(pk=command.pk).update(lease_expires_at=timezone.now() + timedelta(seconds=1))

    response = claim(alice_agent, "inst-1")
    assert response.status_code == 201
    again = response.json()
    assert again["command_id"] == first["command_id"]
    assert again["attempt"] == 1

    command.refresh_from_db()
    assert command.attempt == 1
    assert command.state == "claimed"
    # Resuming renews the lease.
    assert command.lease_expires_at > timezone.now() + timedelta(seconds=5)


def test_a_resumed_running_command_comes_back_running_with_its_progress(alice_agent, queued):
    command = queued()
    claim(alice_agent, "inst-1")
    queue.report(command, "inst-1", "running", progress={"bytes": 10})

    body = claim(alice_agent, "inst-1").json()
    assert body["command_id"] == str(command.id)
    assert body["state"] == "running"
    assert body["progress"] == {"bytes": 10}
    command.refresh_from_db()
    assert command.state == "running"
    assert command.attempt == 1


def test_a_claim_never_returns_another_containers_command(alice_agent, alice_sender, charlie_sender, queued):
    charlies = queued(container=charlie_sender)
    assert claim(alice_agent).status_code == 204
    charlies.refresh_from_db()
    assert charlies.state == "queued"
    assert charlies.attempt == 0


def test_another_containers_lease_does_not_block_mine(alice_agent, charlie_agent, charlie_sender, queued):
    charlie_agent_first = queued(container=charlie_sender)
    assert claim(charlie_agent, "inst-1").json()["command_id"] == str(charlie_agent_first.id)
    mine = queued()
    response = claim(alice_agent, "inst-1")
    assert response.status_code == 201
    assert response.json()["command_id"] == str(mine.id)


def test_after_a_command_finishes_the_next_one_is_claimed(alice_agent, queued):
    first = aged(queued(), 5)
    second = aged(queued(), 1)
    claim(alice_agent, "inst-1")
    queue.report(first, "inst-1", "succeeded")

    response = claim(alice_agent, "inst-2")
    assert response.status_code == 201
    assert response.json()["command_id"] == str(second.id)
    second.refresh_from_db()
    assert second.lease_holder == "inst-2"


@pytest.mark.parametrize("body", [{}, {"instance_id": ""}, {"instance_id": "has space"}, {"instance_id": "x" * 65}])
def test_it_needs_a_valid_instance_id(alice_agent, queued, body):
    command = queued()
    response = alice_agent.post(URL, body, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "instance_id"
    command.refresh_from_db()
    assert command.state == "queued"


def test_it_needs_an_agent_token(alice_sender, queued):
    command = queued()
    response = APIClient().post(URL, {"instance_id": "inst-1"}, format="json")
    assert response.status_code == 401
    assert response.json() == {"error": "invalid agent token", "field": None}
    command.refresh_from_db()
    assert command.state == "queued"


def test_a_personal_token_cannot_claim(alice_api, queued):
    command = queued()
    response = claim(alice_api)
    assert response.status_code == 401
    command.refresh_from_db()
    assert command.state == "queued"


def test_a_rotated_token_cannot_claim(alice_agent, alice_sender, queued):
    command = queued()
    alice_sender.rotate_token()
    assert claim(alice_agent).status_code == 401
    command.refresh_from_db()
    assert command.state == "queued"


def test_an_idle_claim_is_a_sign_of_life_and_reads_once(alice_agent, alice_sender, django_assert_num_queries):
    assert alice_sender.last_seen_at is None
    # Most claims find nothing: besides the token and the sign of life, one read, not the claim's
    # transaction and its lock.
    with django_assert_num_queries(3):
        response = alice_agent.post("/api/agent/v1/commands/next?wait=0", {"instance_id": "inst-1"}, format="json")
    assert response.status_code == 204
    alice_sender.refresh_from_db()
    assert alice_sender.online
