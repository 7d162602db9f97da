"""PATCH /api/agent/v1/commands/{id}: the lease holder reports
claimed -> running -> succeeded | failed | canceled; repeats are harmless,
others are refused, and terminal states never change."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from portal.transfers import queue
from portal.transfers.models import Command


def url(command):
    return f"/api/agent/v1/commands/{command.id}"


def report(client, command, state, instance_id="inst-1", **fields):
    return client.patch(url(command), {"instance_id": instance_id, "state": state, **fields}, format="json")


@pytest.fixture
def claimed(alice_sender, queued):
    """A command claimed by alice's agent instance inst-1."""
    command = queued(payload={"n": 1})
    held = queue.claim_next(alice_sender, "inst-1")
    assert held.pk == command.pk
    command.refresh_from_db()
    return command


@pytest.fixture
def running(claimed):
    queue.report(claimed, "inst-1", "running")
    claimed.refresh_from_db()
    return claimed


def snapshot(command):
    command.refresh_from_db()
    return (command.state, command.reason, command.lease_holder, command.lease_expires_at, command.finished_at,
            command.progress, command.cancel_requested)


# --- The happy path ---------------------------------------------------------------------------------


def test_it_moves_a_command_from_claimed_to_running_to_succeeded(alice_agent, claimed):
    before = timezone.now()
    response = report(alice_agent, claimed, "running", progress={"bytes": 10, "total_bytes": 100})
    assert response.status_code == 200
    body = response.json()
    assert body == {"command_id": str(claimed.id), "state": "running", "cancel_requested": False,
                    "lease_expires_at": body["lease_expires_at"]}
    claimed.refresh_from_db()
    assert claimed.state == "running"
    assert claimed.started_at >= before
    assert claimed.progress == {"bytes": 10, "total_bytes": 100}
    assert claimed.last_report_at >= before
    assert parse_datetime(body["lease_expires_at"]) == claimed.lease_expires_at

    response = report(alice_agent, claimed, "succeeded", progress={"bytes": 100, "total_bytes": 100},
                      message="all done")
    assert response.status_code == 200
    assert response.json()["state"] == "succeeded"
    assert response.json()["lease_expires_at"] is None
    claimed.refresh_from_db()
    assert claimed.state == "succeeded"
    assert claimed.reason == ""
    assert claimed.message == "all done"
    assert claimed.finished_at >= claimed.started_at
    assert claimed.lease_expires_at is None
    assert claimed.progress == {"bytes": 100, "total_bytes": 100}


def test_a_claimed_command_may_report_claimed_again(alice_agent, claimed):
    response = report(alice_agent, claimed, "claimed")
    assert response.status_code == 200
    claimed.refresh_from_db()
    assert claimed.state == "claimed"
    assert claimed.started_at is None


def test_a_claimed_command_may_finish_without_running(alice_agent, claimed):
    assert report(alice_agent, claimed, "succeeded").status_code == 200
    claimed.refresh_from_db()
    assert claimed.state == "succeeded"


def test_every_report_renews_the_lease(settings, alice_agent, running):
    almost_gone = timezone.now() + timedelta(seconds=1)
    Command.objects.filter(pk=running.pk).update(lease_expires_at=almost_gone)
    before = timezone.now()
    response = report(alice_agent, running, "running", progress={"bytes": 20})
    assert response.status_code == 200
    running.refresh_from_db()
    assert running.lease_expires_at >= before + timedelta(seconds=settings.DTN_LEASE_SECONDS)


def test_a_failed_report_keeps_its_reason_and_message(alice_agent, running):
    response = report(alice_agent, running, "failed", reason="receiver_unreachable", message="no route to host")
    assert response.status_code == 200
    running.refresh_from_db()
    assert running.state == "failed"
    assert running.reason == "receiver_unreachable"
    assert running.message == "no route to host"
    assert running.finished_at is not None
    assert running.lease_expires_at is None


def test_a_canceled_report_records_canceled_by_user(alice_agent, running):
    assert report(alice_agent, running, "canceled").status_code == 200
    running.refresh_from_db()
    assert running.state == "canceled"
    assert running.reason == "canceled_by_user"


# --- Repeats are harmless ------------------------------------------------------------------------------


def test_repeating_a_running_report_is_harmless(alice_agent, running):
    started = running.started_at
    first = report(alice_agent, running, "running", progress={"bytes": 5})
    second = report(alice_agent, running, "running", progress={"bytes": 5})
    assert first.status_code == second.status_code == 200
    assert second.json()["state"] == "running"
    running.refresh_from_db()
    assert running.state == "running"
    assert running.started_at == started
    assert running.attempt == 1


@pytest.mark.parametrize("state, extra", [("succeeded", {}), ("failed", {"reason": "checksum_mismatch"}),
                                          ("canceled", {})])
def test_repeating_the_final_report_is_harmless(alice_agent, running, state, extra):
    first = report(alice_agent, running, state, **extra)
    assert first.status_code == 200
    finished = snapshot(running)

    second = report(alice_agent, running, state, **extra)
    assert second.status_code == 200
    assert second.json() == first.json()
    assert snapshot(running) == finished


# --- Refusals ----------------------------------------------------------------------------------------------


def test_it_refuses_a_report_from_another_instance(alice_agent, running):
    before = snapshot(running)
    response = report(alice_agent, running, "succeeded", instance_id="inst-2")
    assert response.status_code == 409
    body = response.json()
    assert body["error"]
    assert "field" in body
    assert snapshot(running) == before


def test_it_refuses_a_final_report_from_another_instance(alice_agent, running):
    report(alice_agent, running, "succeeded")
    before = snapshot(running)
    response = report(alice_agent, running, "succeeded", instance_id="inst-2")
    assert response.status_code == 409
    assert snapshot(running) == before


@pytest.mark.parametrize("final, extra, then, then_extra", [
    ("succeeded", {}, "failed", {"reason": "rclone_error"}),
    ("succeeded", {}, "running", {}),
    ("failed", {"reason": "receiver_full"}, "succeeded", {}),
    ("canceled", {}, "succeeded", {}),
    ("canceled", {}, "claimed", {}),
])
def test_a_finished_command_never_changes_state(alice_agent, running, final, extra, then, then_extra):
    assert report(alice_agent, running, final, **extra).status_code == 200
    finished = snapshot(running)
    response = report(alice_agent, running, then, **then_extra)
    assert response.status_code == 409
    assert response.json()["error"]
    assert snapshot(running) == finished


def test_a_repeated_failed_report_cannot_change_the_reason(alice_agent, running):
    assert report(alice_agent, running, "failed", reason="receiver_full").status_code == 200
    finished = snapshot(running)
    # Same state: answered like a repeat, and the first reason stays.
    response = report(alice_agent, running, "failed", reason="auth_failed", message="other")
    assert response.status_code == 200
    assert response.json()["state"] == "failed"
    assert snapshot(running) == finished
    assert running.reason == "receiver_full"


def test_a_running_command_cannot_go_back_to_claimed(alice_agent, running):
    before = snapshot(running)
    response = report(alice_agent, running, "claimed")
    assert response.status_code == 409
    assert snapshot(running) == before


def test_a_queued_command_cannot_be_reported(alice_agent, queued):
    command = queued()
    response = report(alice_agent, command, "running")
    assert response.status_code == 409
    command.refresh_from_db()
    assert command.state == "queued"
    assert command.started_at is None


def test_a_failed_report_needs_a_reason(alice_agent, running):
    before = snapshot(running)
    response = report(alice_agent, running, "failed")
    assert response.status_code == 400
    assert response.json()["field"] == "reason"
    assert snapshot(running) == before


def test_it_refuses_an_unknown_reason(alice_agent, running):
    before = snapshot(running)
    response = report(alice_agent, running, "failed", reason="gremlins")
    assert response.status_code == 400
    assert response.json()["field"] == "reason"
    assert snapshot(running) == before


@pytest.mark.parametrize("state", ["queued", "paused", ""])
def test_it_refuses_a_state_an_agent_cannot_report(alice_agent, running, state):
    before = snapshot(running)
    response = report(alice_agent, running, state)
    assert response.status_code == 400
    assert response.json()["field"] == "state"
    assert snapshot(running) == before


def test_it_needs_an_instance_id(alice_agent, running):
    before = snapshot(running)
    response = alice_agent.patch(url(running), {"state": "succeeded"}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "instance_id"
    assert snapshot(running) == before


def test_another_containers_command_is_not_found(charlie_agent, running):
    before = snapshot(running)
    response = report(charlie_agent, running, "succeeded")
    assert response.status_code == 404
    assert response.json()["field"] is None
    assert snapshot(running) == before


def test_an_unknown_command_is_not_found(alice_agent, alice_sender):
    response = alice_agent.patch("/api/agent/v1/commands/00000000-0000-0000-0000-000000000000",
                                 {"instance_id": "inst-1", "state": "running"}, format="json")
    assert response.status_code == 404


def test_it_needs_an_agent_token(running):
    before = snapshot(running)
    response = report(APIClient(), running, "succeeded")
    assert response.status_code == 401
    assert response.json() == {"error": "invalid agent token", "field": None}
    assert snapshot(running) == before


def test_a_personal_token_cannot_report(alice_api, running):
    before = snapshot(running)
    assert report(alice_api, running, "succeeded").status_code == 401
    assert snapshot(running) == before
