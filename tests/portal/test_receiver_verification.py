"""The bytes are checked where they landed: the receiver's SHA-256 against the sender's."""

import hashlib
import json

import pytest

from portal.containers.models import AgentTask
from portal.transfers.models import Transfer
from tests.portal.conftest import agent_client
from tests.portal.sending import HAND_S3, checked_in, claim, grant, report, send

SHA_A = hashlib.sha256(b"a").hexdigest()
SHA_B = hashlib.sha256(b"b").hexdigest()
FILES = [{"path": "data/run-17/a.bin", "size": 1, "sha256": SHA_A, "outcome": "sent"},
         {"path": "data/run-17/sub dir/b.bin", "size": 1, "sha256": SHA_B, "outcome": "sent"}]


@pytest.fixture
def sent(alice, alice_sender, bob, bob_receiver, alice_agent):
    """Alice's transfer to Bob, copied by her agent and now reported as verifying."""
    checked_in(bob_receiver)
    grant(bob_receiver, alice)
    transfer = send(alice, alice_sender, receiver=bob_receiver, prefix="from-alice")
    command_id = claim(alice_agent).json()["command_id"]
    report(alice_agent, command_id, "running", progress={"files": FILES})
    reply = report(alice_agent, command_id, "running", progress={"phase": "verifying"})
    assert reply.status_code == 200
    transfer.refresh_from_db()
    return transfer, command_id, reply.json()


def receiver_answers(bob_receiver, files):
    bob = agent_client(bob_receiver)
    task = bob.post("/api/agent/v1/tasks/next?wait=0", {"instance_id": "bob-1"}, format="json").json()["tasks"][0]
    assert task["kind"] == "verify_received"
    response = bob.post(f"/api/agent/v1/tasks/{task['task_id']}",
                        {"instance_id": "bob-1", "ok": True, "result": {"files": files(task["params"]["paths"])}},
                        format="json")
    assert response.status_code == 200
    return task


def test_the_receiver_is_asked_for_exactly_the_transfers_files_where_they_landed(sent, bob_receiver):
    transfer, _, reply = sent
    assert reply["verification"] == {"state": "pending"}
    task = AgentTask.objects.get(container=bob_receiver, kind="verify_received")
    bucket = transfer.bucket
    assert sorted(task.params["paths"]) == [f"{bucket}/from-alice/data/run-17/a.bin",
                                            f"{bucket}/from-alice/data/run-17/sub dir/b.bin"]


def test_a_repeated_verifying_report_asks_only_once(sent, alice_agent, bob_receiver):
    _, command_id, _ = sent
    report(alice_agent, command_id, "running", progress={"phase": "verifying"})
    assert AgentTask.objects.filter(container=bob_receiver, kind="verify_received").count() == 1


def test_matching_checksums_pass_and_count_as_verified(sent, alice_agent, bob_receiver):
    transfer, command_id, _ = sent
    receiver_answers(bob_receiver, lambda paths: [
        {"path": p, "size": 1, "sha256": SHA_A if p.endswith("a.bin") else SHA_B} for p in paths])
    reply = report(alice_agent, command_id, "running", progress={"phase": "verifying"}).json()
    assert reply["verification"]["state"] == "passed"
    transfer.refresh_from_db()
    assert transfer.files_verified == 2 and transfer.bytes_verified == 2
    assert {f.receiver_sha256 for f in transfer.files.all()} == {SHA_A, SHA_B}


def test_a_flipped_byte_fails_naming_the_file(sent, alice_agent, bob_receiver):
    transfer, command_id, _ = sent
    flipped = hashlib.sha256(b"B").hexdigest()
    receiver_answers(bob_receiver, lambda paths: [
        {"path": p, "size": 1, "sha256": SHA_A if p.endswith("a.bin") else flipped} for p in paths])
    verdict = report(alice_agent, command_id, "running", progress={"phase": "verifying"}).json()["verification"]
    assert verdict["state"] == "failed"
    assert verdict["files"] == ["data/run-17/sub dir/b.bin"]
    assert "data/run-17/sub dir/b.bin" in verdict["message"]
    transfer.refresh_from_db()
    assert transfer.files_verified == 1


def test_a_file_missing_at_the_receiver_fails_too(sent, alice_agent, bob_receiver):
    _, command_id, _ = sent
    receiver_answers(bob_receiver, lambda paths: [
        {"path": p, "size": 1, "sha256": SHA_A} if p.endswith("a.bin") else {"path": p, "error": "not found"}
        for p in paths])
    verdict = report(alice_agent, command_id, "running", progress={"phase": "verifying"}).json()["verification"]
    assert verdict["state"] == "failed" and verdict["files"] == ["data/run-17/sub dir/b.bin"]


def test_a_receiver_that_cannot_verify_fails_the_verdict_with_its_words(sent, alice_agent, bob_receiver):
    _, command_id, _ = sent
    bob = agent_client(bob_receiver)
    task = AgentTask.objects.get(container=bob_receiver, kind="verify_received")
    bob.post(f"/api/agent/v1/tasks/{task.pk}", {"instance_id": "bob-1", "ok": False, "error": "disk unreadable"},
             format="json")
    verdict = report(alice_agent, command_id, "running", progress={"phase": "verifying"}).json()["verification"]
    assert verdict["state"] == "failed" and "disk unreadable" in verdict["message"]


def test_a_hand_entered_endpoint_has_no_receiver_to_ask(alice, alice_sender, alice_agent):
    send(alice, alice_sender, s3=HAND_S3)
    command_id = claim(alice_agent).json()["command_id"]
    report(alice_agent, command_id, "running", progress={"files": FILES})
    verdict = report(alice_agent, command_id, "running", progress={"phase": "verifying"}).json()["verification"]
    assert verdict["state"] == "not_applicable"
    assert AgentTask.objects.count() == 0


def test_reports_outside_the_verifying_phase_carry_no_verdict(sent, alice_agent):
    _, command_id, _ = sent
    reply = report(alice_agent, command_id, "running", progress={"bytes": 2}).json()
    assert "verification" not in reply
    assert Transfer.objects.get().state == "active"


def test_a_large_folder_is_verified_in_batches_while_it_lands_and_the_rest_at_the_end(
        alice, alice_sender, bob, bob_receiver, alice_agent, monkeypatch):
    from portal.transfers import verification

    monkeypatch.setattr(verification, "BATCH_FILES", 3)
    checked_in(bob_receiver)
    grant(bob_receiver, alice)
    transfer = send(alice, alice_sender, receiver=bob_receiver, prefix="batches")
    command_id = claim(alice_agent).json()["command_id"]

    def files(names, sha=SHA_A):
        return [{"path": f"d/{n}", "size": 1, "sha256": sha, "outcome": "sent"} for n in names]

    def asked():
        return [sorted(p.rsplit("/", 1)[1] for p in t.params["paths"])
                for t in AgentTask.objects.filter(container=bob_receiver, kind="verify_received").order_by("created_at")]

    report(alice_agent, command_id, "running", progress={"files": files(["f1", "f2"])})
    assert asked() == []  # fewer than a batch: nothing asked yet
    # A sent file whose checksum the sender has not computed yet waits for it.
    report(alice_agent, command_id, "running",
           progress={"files": files(["f3"]) + [{"path": "d/f4", "size": 1, "outcome": "sent"}]})
    assert asked() == [["f1", "f2", "f3"]]
    receiver_answers(bob_receiver, lambda paths: [{"path": p, "size": 1, "sha256": SHA_A} for p in paths])
    report(alice_agent, command_id, "running", progress={"files": files(["f4", "f5"])})
    assert asked() == [["f1", "f2", "f3"]]
    # At the end: only the files not asked about yet.
    verdict = report(alice_agent, command_id, "running", progress={"phase": "verifying"}).json()["verification"]
    assert verdict == {"state": "pending"}
    assert asked() == [["f1", "f2", "f3"], ["f4", "f5"]]
    receiver_answers(bob_receiver, lambda paths: [{"path": p, "size": 1, "sha256": SHA_A} for p in paths])
    verdict = report(alice_agent, command_id, "running", progress={"phase": "verifying"}).json()["verification"]
    assert verdict["state"] == "passed" and verdict["message"].startswith("5 file(s)")
    messages = [e.message for e in transfer.events.filter(kind="verification_requested")]
    assert messages == ["asked the receiver for the SHA-256 of 5 file(s) as they landed (3 of them while the"
                        " transfer ran)"]


# --- Each file's outcome from the receiver's evidence (issue 19) -----------------------------------------------


def outcomes(transfer):
    return {f.path: (f.outcome, f.error) for f in transfer.files.all()}


def test_each_file_is_missing_differs_or_unreadable_by_the_receivers_own_words(sent, alice_agent, bob_receiver,
                                                                                alice, alice_sender):
    transfer, command_id, _ = sent
    flipped = hashlib.sha256(b"B").hexdigest()
    receiver_answers(bob_receiver, lambda paths: [
        {"path": p, "size": 1, "sha256": flipped} if p.endswith("b.bin")
        else {"path": p, "error": f"{p!r} does not exist in the receive folder"} for p in paths])
    verdict = report(alice_agent, command_id, "running", progress={"phase": "verifying"}).json()["verification"]
    assert verdict["state"] == "failed"
    assert verdict["message"] == ("the receiver's copy is not the sender's: missing at the receiver for"
                                  " data/run-17/a.bin; SHA-256 differs from the sender's for data/run-17/sub dir/b.bin")
    assert outcomes(Transfer.objects.get(pk=transfer.pk)) == {
        "data/run-17/a.bin": ("missing", "not at the receiver"),
        "data/run-17/sub dir/b.bin": ("differs", "its SHA-256 at the receiver differs from the sender's")}
    transfer.refresh_from_db()
    # Neither counts as transferred any more: both failed the transfer, and say how.
    assert (transfer.files_transferred, transfer.files_failed, transfer.files_verified) == (0, 2, 0)
    response = alice_api_for(alice).get(f"/api/v1/transfers/{transfer.pk}/manifest.json")
    manifest = json.loads(b"".join(response.streaming_content))
    assert {row["path"]: row["outcome"] for row in manifest["manifest"]} == {
        "data/run-17/a.bin": "missing", "data/run-17/sub dir/b.bin": "differs"}


def test_a_file_the_receiver_did_not_answer_for_is_missing_and_one_it_could_not_read_failed(sent, alice_agent,
                                                                                           bob_receiver):
    transfer, command_id, _ = sent
    receiver_answers(bob_receiver, lambda paths: [
        {"path": p, "error": "permission denied"} for p in paths if p.endswith("b.bin")])
    verdict = report(alice_agent, command_id, "running", progress={"phase": "verifying"}).json()["verification"]
    assert verdict["state"] == "failed"
    assert "missing at the receiver for data/run-17/a.bin" in verdict["message"]
    assert "the receiver could not read it for data/run-17/sub dir/b.bin" in verdict["message"]
    assert outcomes(Transfer.objects.get(pk=transfer.pk))["data/run-17/sub dir/b.bin"] == (
        "failed", "the receiver could not read it: permission denied")


def test_a_sender_may_not_report_the_receivers_outcomes(alice_agent, alice, alice_sender):
    send(alice, alice_sender, s3=HAND_S3)
    command_id = claim(alice_agent).json()["command_id"]
    response = report(alice_agent, command_id, "running", progress={"files": [
        {"path": "a", "size": 1, "outcome": "missing"}]})
    assert response.status_code == 400
    assert "sent, skipped, failed" in response.json()["error"]


def alice_api_for(user):
    from tests.portal.conftest import token_client

    return token_client(user)
