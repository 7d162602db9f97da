"""An agent's reports (PATCH /api/agent/v1/commands/{id}) drive the transfer's
record in the same transaction: state from the latest command, counters,
per-file results keyed by path (a repeated report changes nothing) and the
event log (deduplicated by time and kind)."""

from __future__ import annotations

import pytest

from portal.transfers import queue, reaper
from portal.transfers.models import Command, Transfer
from tests.portal.sending import checked_in, claim, grant, report, send

pytestmark = pytest.mark.usefixtures("agent_threads_db")

SHA_A = "a" * 64
SHA_B = "b" * 64
SHA_C = "c" * 64


@pytest.fixture
def running(alice, alice_agent, alice_sender, bob_receiver):
    """Alice's transfer to Bob, claimed by her agent (instance inst-1)."""
    checked_in(bob_receiver)
    grant(bob_receiver, alice)
    transfer = send(alice, alice_sender, receiver=bob_receiver, sources=["data"])
    command_id = claim(alice_agent).json()["command_id"]
    transfer.command_id = command_id
    return transfer


def progress(**fields):
    base = {"bytes": 0, "total_bytes": 3000, "speed": 0.0, "eta": None, "files_done": 0, "files_total": 3,
            "errors": 0, "retries": 0, "files": [], "events": []}
    return {**base, **fields}


def file(path, outcome="sent", size=1000, sha=SHA_A, receiver_sha="", error=""):
    return {"path": path, "size": size, "sha256": sha, "receiver_sha256": receiver_sha, "outcome": outcome,
            "error": error}


def fresh(transfer) -> Transfer:
    return Transfer.objects.select_related("latest_command").get(pk=transfer.pk)


def test_a_running_report_sets_the_live_numbers(alice_agent, running):
    response = report(alice_agent, running.command_id, "running",
                      progress=progress(bytes=1500, speed=112e6, eta=4, retries=2))
    assert response.status_code == 200
    transfer = fresh(running)
    assert transfer.state == "active"
    assert (transfer.bytes_transferred, transfer.bytes_total, transfer.files_total) == (1500, 3000, 3)
    assert (transfer.speed, transfer.eta, transfer.faults) == (112e6, 4, 2)
    assert transfer.latest_command.started_at is not None


def test_per_file_results_are_recorded_and_counted(alice_agent, running):
    report(alice_agent, running.command_id, "running", progress=progress(files=[
        file("data/a.bin", sha=SHA_A, receiver_sha=SHA_A),
        file("data/b.bin", outcome="skipped", size=500, sha=SHA_B, receiver_sha=SHA_B),
        file("data/c.bin", outcome="failed", size=200, sha=SHA_C, error="checksum mismatch"),
    ]))
    transfer = fresh(running)
    rows = {row.path: row for row in transfer.files.all()}
    assert set(rows) == {"data/a.bin", "data/b.bin", "data/c.bin"}
    assert (rows["data/a.bin"].size, rows["data/a.bin"].sha256, rows["data/a.bin"].receiver_sha256) == (
        1000, SHA_A, SHA_A)
    assert rows["data/c.bin"].error == "checksum mismatch"
    assert (transfer.files_transferred, transfer.files_skipped, transfer.files_failed) == (1, 1, 1)
    assert (transfer.files_verified, transfer.bytes_verified) == (2, 1500)
    assert (transfer.bytes_skipped, transfer.bytes_failed) == (500, 200)


def test_a_repeated_report_changes_nothing(alice_agent, running):
    body = progress(bytes=2000, files=[file("data/a.bin")],
                    events=[{"at": "2026-11-25T10:00:00Z", "kind": "retry", "message": "timeout"}])
    report(alice_agent, running.command_id, "running", progress=body)
    first = Transfer.objects.values().get(pk=running.pk)
    again = report(alice_agent, running.command_id, "running", progress=body)
    assert again.status_code == 200
    transfer = fresh(running)
    assert transfer.files.count() == 1
    assert transfer.events.filter(kind="retry").count() == 1
    assert {k: v for k, v in Transfer.objects.values().get(pk=running.pk).items()} == first


def test_later_reports_add_files_and_update_a_path_in_place(alice_agent, running):
    report(alice_agent, running.command_id, "running",
           progress=progress(files=[file("data/a.bin", outcome="failed", error="timeout")]))
    report(alice_agent, running.command_id, "running",
           progress=progress(files=[file("data/a.bin", receiver_sha=SHA_A), file("data/b.bin")]))
    transfer = fresh(running)
    rows = {row.path: row for row in transfer.files.all()}
    assert len(rows) == 2
    assert (rows["data/a.bin"].outcome, rows["data/a.bin"].error) == ("sent", "")
    assert (transfer.files_transferred, transfer.files_failed, transfer.files_verified) == (2, 0, 1)


def test_a_checksum_already_known_is_kept_when_a_later_report_leaves_it_out(alice_agent, running):
    report(alice_agent, running.command_id, "running", progress=progress(files=[file("a", receiver_sha=SHA_A)]))
    report(alice_agent, running.command_id, "running", progress=progress(files=[file("a", sha="")]))
    row = fresh(running).files.get()
    assert (row.sha256, row.receiver_sha256) == (SHA_A, SHA_A)


def test_a_differing_receiver_checksum_is_not_verified(alice_agent, running):
    report(alice_agent, running.command_id, "running",
           progress=progress(files=[file("a", sha=SHA_A, receiver_sha=SHA_B)]))
    transfer = fresh(running)
    assert (transfer.files_transferred, transfer.files_verified, transfer.bytes_verified) == (1, 0, 0)


def test_agent_events_are_logged_once_each(alice_agent, running):
    events = [{"at": "2026-11-25T10:00:00Z", "kind": "network_check", "message": "go: rtt 51 ms"},
              {"at": "2026-11-25T10:00:05+00:00", "kind": "retry", "message": "connection reset"}]
    report(alice_agent, running.command_id, "running", progress=progress(events=events))
    report(alice_agent, running.command_id, "running", progress=progress(events=events[1:] + [
        {"at": "2026-11-25T10:00:09Z", "kind": "retry", "message": "again"}]))
    logged = list(fresh(running).events.filter(source="agent").values_list("kind", "message"))
    assert logged == [("network_check", "go: rtt 51 ms"), ("retry", "connection reset"), ("retry", "again")]


def test_success_completes_the_transfer(alice_agent, running):
    report(alice_agent, running.command_id, "running", progress=progress(bytes=1000, speed=5.0, eta=1))
    response = report(alice_agent, running.command_id, "succeeded",
                      progress=progress(bytes=3000, files=[file("a"), file("b"), file("c")]))
    assert response.status_code == 200
    transfer = fresh(running)
    assert transfer.state == "succeeded"
    assert transfer.completed_at is not None
    assert (transfer.speed, transfer.eta) == (None, None)
    assert transfer.fatal_error is None
    assert transfer.effective_speed is not None and transfer.effective_speed > 0
    assert transfer.events.filter(kind="succeeded", source="portal").exists()


def test_failure_records_the_fatal_error(alice_agent, running):
    report(alice_agent, running.command_id, "failed", reason="auth_failed", message="403 from the receiver")
    transfer = fresh(running)
    assert transfer.state == "failed"
    assert transfer.fatal_error == {"reason": "auth_failed", "message": "403 from the receiver"}
    assert transfer.events.filter(kind="failed", message="auth_failed: 403 from the receiver").exists()


def test_files_and_events_are_not_kept_in_the_commands_progress(alice_agent, running):
    report(alice_agent, running.command_id, "running",
           progress=progress(bytes=7, files=[file("a")], events=[{"at": "2026-11-25T10:00:00Z", "kind": "start"}]))
    stored = Command.objects.get(pk=running.command_id).progress
    assert stored["bytes"] == 7
    assert "files" not in stored and "events" not in stored


def test_a_report_from_an_instance_without_the_lease_changes_nothing(alice_agent, running):
    response = report(alice_agent, running.command_id, "running", instance_id="inst-2",
                      progress=progress(bytes=999, files=[file("x")]))
    assert response.status_code == 409
    transfer = fresh(running)
    assert transfer.bytes_transferred == 0
    assert not transfer.files.exists()


def test_a_late_report_after_success_changes_nothing(alice_agent, running):
    report(alice_agent, running.command_id, "succeeded", progress=progress(bytes=3000))
    response = report(alice_agent, running.command_id, "running", progress=progress(bytes=5, files=[file("z")]))
    assert response.status_code == 409
    transfer = fresh(running)
    assert (transfer.state, transfer.bytes_transferred, transfer.files.count()) == ("succeeded", 3000, 0)


@pytest.mark.parametrize("bad,where", [
    ({"bytes": -1}, "progress.bytes"),
    ({"bytes": "12"}, "progress.bytes"),
    ({"speed": "fast"}, "progress.speed"),
    ({"files": "a.bin"}, "progress.files"),
    ({"files": [{"path": "a", "outcome": "lost"}]}, "progress.files[0].outcome"),
    ({"files": [{"path": "", "outcome": "sent"}]}, "progress.files[0].path"),
    ({"files": [{"path": "a", "outcome": "sent", "sha256": "xyz"}]}, "progress.files[0].sha256"),
    ({"files": [{"path": "a", "outcome": "sent", "size": 2**63}]}, "progress.files[0].size"),
    ({"events": [{"at": "yesterday", "kind": "retry"}]}, "progress.events[0].at"),
    ({"events": [{"at": "2026-11-25T10:00:00Z", "kind": "Retry!"}]}, "progress.events[0].kind"),
    ({"note": "nul\x00inside"}, "progress."),
])
def test_a_malformed_progress_is_refused_whole_naming_the_bad_value(alice_agent, running, bad, where):
    body = {**progress(bytes=10, files=[file("good")]), **bad}
    response = report(alice_agent, running.command_id, "running", progress=body)
    assert response.status_code == 400
    assert response.json()["field"] == "progress"
    assert where in response.json()["error"]
    transfer = fresh(running)
    assert (transfer.bytes_transferred, transfer.files.count()) == (0, 0)
    assert Command.objects.get(pk=running.command_id).state == "claimed"


def test_an_unpaired_surrogate_is_refused_before_it_reaches_the_database(alice_agent, running):
    # JSON may spell a lone surrogate ("\\ud800"); PostgreSQL cannot store one.
    body = ('{"instance_id": "inst-1", "state": "running", "progress": {"files": '
            '[{"path": "half\\ud800", "size": 1, "outcome": "sent"}]}}')
    response = alice_agent.generic("PATCH", f"/api/agent/v1/commands/{running.command_id}", body,
                                   content_type="application/json")
    assert response.status_code == 400
    assert "unpaired surrogates" in response.json()["error"]
    assert not fresh(running).files.exists()


def test_unknown_progress_keys_are_kept_for_the_command(alice_agent, running):
    report(alice_agent, running.command_id, "running", progress=progress(transferring=[{"name": "a"}]))
    assert Command.objects.get(pk=running.command_id).progress["transferring"] == [{"name": "a"}]


def test_a_new_lease_adds_to_the_bytes_moved_before_and_counts_a_half_sent_file_once(settings, alice_agent,
                                                                                    running):
    report(alice_agent, running.command_id, "running", progress=progress(bytes=1200, retries=1))
    # The agent vanished; the reaper gives the command back to the queue.
    Command.objects.filter(pk=running.command_id).update(lease_expires_at="2000-01-01T00:00:00Z")
    assert reaper.reap_expired_leases() == {"requeued": 1, "failed": 0}
    transfer = fresh(running)
    assert transfer.state == "queued"
    assert transfer.events.filter(kind="retry", source="portal").exists()

    assert claim(alice_agent, "inst-2").status_code == 201
    report(alice_agent, running.command_id, "running", instance_id="inst-2", progress=progress(bytes=300, retries=2))
    transfer = fresh(running)
    # No file of lease 1 was reported sent: lease 2 sends them again from their start. Progress stays at the
    # 1200 bytes of the dataset already counted; the 300 moved again are re-sent.
    assert (transfer.state, transfer.bytes_transferred, transfer.bytes_resent, transfer.faults) == (
        "active", 1200, 300, 3)
    assert transfer.bytes_moved == 1500


def test_the_last_lease_expiring_fails_the_transfer(settings, alice_agent, running):
    settings.DTN_MAX_ATTEMPTS = 1
    Command.objects.filter(pk=running.command_id).update(lease_expires_at="2000-01-01T00:00:00Z")
    reaper.reap_expired_leases()
    transfer = fresh(running)
    assert (transfer.state, transfer.fatal_reason) == ("failed", "lease_expired")


def test_the_counters_always_equal_a_count_of_the_file_rows(running):
    """Counters move by each row's difference; after any sequence of reports they
    must equal what a full count of the rows says."""
    import random

    from django.db.models import Count, Q, Sum

    rng = random.Random(17)
    command = Command.objects.get(pk=running.command_id)
    for _ in range(40):
        files = [file(f"f{rng.randrange(12)}", outcome=rng.choice(["sent", "skipped", "failed"]),
                      size=rng.randrange(1, 500), sha=rng.choice([SHA_A, ""]),
                      receiver_sha=rng.choice([SHA_A, SHA_B, ""])) for _ in range(rng.randrange(1, 6))]
        queue.report(command, "inst-1", "running", progress={"files": files})
    transfer = fresh(running)
    verified = Q(outcome__in=["sent", "skipped"]) & ~Q(sha256="") & Q(receiver_sha256=SHA_A) & Q(sha256=SHA_A)
    counted = transfer.files.aggregate(
        files_transferred=Count("pk", filter=Q(outcome="sent")), files_skipped=Count("pk", filter=Q(outcome="skipped")),
        files_failed=Count("pk", filter=Q(outcome="failed")), files_verified=Count("pk", filter=verified),
        bytes_skipped=Sum("size", filter=Q(outcome="skipped"), default=0),
        bytes_failed=Sum("size", filter=Q(outcome="failed"), default=0),
        bytes_verified=Sum("size", filter=verified, default=0))
    assert {name: getattr(transfer, name) for name in counted} == counted
    assert transfer.files_transferred + transfer.files_skipped + transfer.files_failed == transfer.files.count()
