"""Receiver verification at its edges: stale answers, missing checksums, a deleted receiver."""

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone

from portal.containers.models import AgentTask
from portal.containers.models import Container
from portal.transfers import reaper
from portal.transfers.models import Command
from tests.portal.conftest import agent_client
from tests.portal.sending import checked_in, claim, grant, report, send

SHA = hashlib.sha256(b"a").hexdigest()
FILE = {"path": "data/run-17/a.bin", "size": 1, "sha256": SHA, "outcome": "sent"}


@pytest.fixture
def verifying(alice, alice_sender, bob_receiver, alice_agent):
    checked_in(bob_receiver)
    grant(bob_receiver, alice)
    transfer = send(alice, alice_sender, receiver=bob_receiver)
    command_id = claim(alice_agent).json()["command_id"]
    report(alice_agent, command_id, "running", progress={"files": [FILE]})
    report(alice_agent, command_id, "running", progress={"phase": "verifying"})
    return transfer, command_id


def answer(bob_receiver, body):
    task = AgentTask.objects.get(container=bob_receiver, kind="verify_received", state="pending")
    return agent_client(bob_receiver).post(f"/api/agent/v1/tasks/{task.pk}",
                                           {"instance_id": "bob", "ok": True, "result": body}, format="json")


def verdict(alice_agent, command_id):
    return report(alice_agent, command_id, "running", progress={"phase": "verifying"}).json()["verification"]


def test_a_file_the_receiver_could_not_read_overrides_a_checksum_claimed_earlier(alice_agent, bob_receiver,
                                                                                   verifying):
    transfer, command_id = verifying
    # The sender's own word on what landed does not survive the receiver's answer.
    report(alice_agent, command_id, "running", progress={"files": [{**FILE, "receiver_sha256": SHA}]})
    assert answer(bob_receiver, {"files": [{"path": "x", "error": "unreadable"}]}).status_code == 200
    assert verdict(alice_agent, command_id)["state"] == "failed"
    assert transfer.files.get().receiver_sha256 == ""


@pytest.mark.parametrize("make_body", [
    lambda landed: ["not", "an", "object"],
    lambda landed: {"files": "nope"},
    lambda landed: {"files": [1, None, {"path": 3}]},
    lambda landed: {"files": [{"path": landed, "sha256": "z" * 200}]},
])
def test_a_malformed_receiver_answer_is_a_mismatch_not_a_server_error(alice_agent, bob_receiver, verifying,
                                                                      make_body):
    _, command_id = verifying
    landed = AgentTask.objects.get(kind="verify_received").params["paths"][0]
    assert answer(bob_receiver, make_body(landed)).status_code == 200
    assert verdict(alice_agent, command_id)["state"] == "failed"


def test_a_command_claimed_again_asks_the_receiver_afresh(alice_agent, bob_receiver, verifying, settings):
    transfer, command_id = verifying
    first = AgentTask.objects.get(kind="verify_received")
    AgentTask.objects.filter(pk=first.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    # The sender goes silent; the reaper puts the command back; it is claimed again.
    Command.objects.filter(pk=command_id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    reaper.reap_expired_leases()
    assert claim(alice_agent, instance_id="inst-2").status_code == 201
    report(alice_agent, command_id, "running", instance_id="inst-2", progress={"phase": "verifying"})
    assert AgentTask.objects.filter(kind="verify_received").count() == 2
    reply = report(alice_agent, command_id, "running", instance_id="inst-2", progress={"phase": "verifying"})
    assert reply.json()["verification"] == {"state": "pending"}


def test_a_deleted_receiver_fails_verification_instead_of_passing_it(alice_agent, bob_receiver, verifying):
    transfer, command_id = verifying
    Container.objects.filter(pk=bob_receiver.pk).delete()
    result = verdict(alice_agent, command_id)
    assert result["state"] == "failed" and "deleted" in result["message"]


@pytest.mark.parametrize("path", ["../other-bucket/big.iso", "/etc/passwd", "data/../../x"])
def test_reported_paths_cannot_leave_the_transfer(alice_agent, verifying, path):
    _, command_id = verifying
    response = report(alice_agent, command_id, "running", progress={"files": [{**FILE, "path": path}]})
    assert response.status_code == 400
    assert response.json()["field"] == "progress"
    assert "files[0].path" in response.json()["error"]


def test_a_file_the_receiver_does_not_hold_is_called_missing_and_one_whose_bytes_differ_differs(
        alice, alice_agent, bob_receiver, verifying):
    transfer, command_id = verifying
    other = {**FILE, "path": "data/run-17/b.bin"}
    report(alice_agent, command_id, "running", progress={"files": [other]})
    report(alice_agent, command_id, "running", progress={"phase": "verifying"})
    tasks = list(AgentTask.objects.filter(container=bob_receiver, kind="verify_received", state="pending"))
    paths = [path for task in tasks for path in task.params["paths"]]
    a, b = (next(p for p in paths if p.endswith(name)) for name in ("a.bin", "b.bin"))
    for task in tasks:
        files = [{"path": a, "error": f"{a!r} does not exist in the send folder"} if p == a else
                 {"path": p, "size": 1, "sha256": "0" * 64} for p in task.params["paths"]]
        agent_client(bob_receiver).post(f"/api/agent/v1/tasks/{task.pk}", {"instance_id": "bob", "ok": True,
                                                                          "result": {"files": files}}, format="json")
    said = verdict(alice_agent, command_id)
    assert said["state"] == "failed" and said["missing"] == ["data/run-17/a.bin"]
    assert said["message"] == ("the receiver's copy is not the sender's: missing at the receiver for"
                               " data/run-17/a.bin; SHA-256 differs from the sender's for data/run-17/b.bin")
