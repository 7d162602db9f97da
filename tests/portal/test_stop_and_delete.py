"""POST /api/v1/commands/{id}/stop and DELETE /api/v1/commands/{id}: a person
stops a queued command at once or asks a running agent to stop; only finished
commands can be deleted."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from portal.transfers import queue
from portal.transfers.models import Command


def stop(client, command):
    return client.post(f"/api/v1/commands/{command.id}/stop")


def delete(client, command):
    return client.delete(f"/api/v1/commands/{command.id}")


def agent_report(client, command, state, instance_id="inst-1", **fields):
    return client.patch(f"/api/agent/v1/commands/{command.id}",
                        {"instance_id": instance_id, "state": state, **fields}, format="json")


@pytest.fixture
def running(alice_sender, queued):
    command = queued()
    queue.claim_next(alice_sender, "inst-1")
    queue.report(command, "inst-1", "running")
    command.refresh_from_db()
    assert command.state == "running"
    return command


def finished(queued, state):
    reason = {"failed": "rclone_error", "canceled": "canceled_by_user"}.get(state, "")
    return queued(state=state, reason=reason)


# --- Stop -----------------------------------------------------------------------------------------


def test_stopping_a_queued_command_cancels_it_at_once(alice_api, alice_sender, queued):
    command = queued()
    response = stop(alice_api, command)
    assert response.status_code == 200
    body = response.json()
    assert body["command_id"] == str(command.id)
    assert body["state"] == "canceled"
    assert body["reason"] == "canceled_by_user"

    command.refresh_from_db()
    assert command.state == "canceled"
    assert command.reason == "canceled_by_user"
    assert command.finished_at is not None
    assert command.attempt == 0
    # Nothing is left for the agent to claim.
    assert queue.claim_next(alice_sender, "inst-1") is None


def test_stopping_a_running_command_asks_the_agent_on_its_next_report(alice_api, alice_agent, running):
    response = stop(alice_api, running)
    assert response.status_code == 200
    assert response.json()["state"] == "running"
    assert response.json()["cancel_requested"] is True
    running.refresh_from_db()
    assert running.state == "running"
    assert running.cancel_requested is True
    assert running.finished_at is None

    reply = agent_report(alice_agent, running, "running", progress={"bytes": 1})
    assert reply.status_code == 200
    assert reply.json()["cancel_requested"] is True

    reply = agent_report(alice_agent, running, "canceled", message="stopped by rclone job/stop")
    assert reply.status_code == 200
    running.refresh_from_db()
    assert running.state == "canceled"
    assert running.reason == "canceled_by_user"
    assert running.finished_at is not None


def test_stopping_a_claimed_command_asks_the_agent_too(alice_api, alice_sender, queued):
    command = queued()
    queue.claim_next(alice_sender, "inst-1")
    assert stop(alice_api, command).status_code == 200
    command.refresh_from_db()
    assert command.state == "claimed"
    assert command.cancel_requested is True


def test_a_running_command_without_a_stop_request_is_not_asked_to_stop(alice_agent, running):
    reply = agent_report(alice_agent, running, "running")
    assert reply.json()["cancel_requested"] is False


def test_stopping_twice_is_harmless(alice_api, running):
    assert stop(alice_api, running).status_code == 200
    assert stop(alice_api, running).status_code == 200
    running.refresh_from_db()
    assert running.state == "running"
    assert running.cancel_requested is True


@pytest.mark.parametrize("state", ["succeeded", "failed", "canceled"])
def test_a_finished_command_cannot_be_stopped(alice_api, queued, state):
    command = finished(queued, state)
    response = stop(alice_api, command)
    assert response.status_code == 409
    assert response.json()["error"]
    command.refresh_from_db()
    assert command.state == state
    assert command.cancel_requested is False


def test_i_cannot_stop_someone_elses_command(charlie_api, queued):
    command = queued()
    response = stop(charlie_api, command)
    assert response.status_code == 404
    command.refresh_from_db()
    assert command.state == "queued"


def test_stopping_needs_authentication(anon_api, queued):
    command = queued()
    assert stop(anon_api, command).status_code == 401
    command.refresh_from_db()
    assert command.state == "queued"


def test_an_agent_cannot_stop_a_command_through_the_peoples_api(alice_agent, queued):
    command = queued()
    assert stop(alice_agent, command).status_code == 401
    command.refresh_from_db()
    assert command.state == "queued"


def test_a_session_needs_csrf_to_stop(alice, queued):
    command = queued()
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(alice)
    assert stop(client, command).status_code == 403
    command.refresh_from_db()
    assert command.state == "queued"


# --- Delete ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["succeeded", "failed", "canceled"])
def test_a_finished_command_can_be_deleted(alice_api, queued, state):
    command = finished(queued, state)
    response = delete(alice_api, command)
    assert response.status_code == 204
    assert not Command.objects.filter(pk=command.pk).exists()


def test_a_queued_command_cannot_be_deleted(alice_api, queued):
    command = queued()
    response = delete(alice_api, command)
    assert response.status_code == 409
    assert "queued" in response.json()["error"]
    command.refresh_from_db()
    assert command.state == "queued"


def test_a_running_command_cannot_be_deleted(alice_api, running):
    response = delete(alice_api, running)
    assert response.status_code == 409
    running.refresh_from_db()
    assert running.state == "running"


def test_a_stopped_queued_command_can_then_be_deleted(alice_api, queued):
    command = queued()
    stop(alice_api, command)
    assert delete(alice_api, command).status_code == 204
    assert not Command.objects.filter(pk=command.pk).exists()


def test_i_cannot_delete_someone_elses_command(charlie_api, queued):
    command = finished(queued, "succeeded")
    assert delete(charlie_api, command).status_code == 404
    assert Command.objects.filter(pk=command.pk).exists()


def test_deleting_needs_authentication(anon_api, queued):
    command = finished(queued, "succeeded")
    assert delete(anon_api, command).status_code == 401
    assert Command.objects.filter(pk=command.pk).exists()
