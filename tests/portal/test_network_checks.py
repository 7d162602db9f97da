"""Network checks in the portal: asked for on demand, offered with keys only to the
sender's agent, answered and shown; reported with a transfer; throughput and stalls."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from portal.containers.models import AgentTask
from portal.containers.models import Container
from portal.netcheck.models import NetworkCheck
from portal.transfers import throughput
from portal.transfers.models import Transfer
from tests.portal.conftest import token_client
from tests.portal.sending import checked_in, claim, grant, report, send

URL = "/api/v1/network-checks"
TASKS_NEXT = "/api/agent/v1/tasks/next?wait=0"
GO = {"verdict": "go", "reason": "", "summary": "Go: fine.", "endpoint": "https://bob:9443",
      "rtt_ms": {"min": 1.0, "median": 1.2, "max": 2.0, "samples": 5},
      "probe": {"single_stream_bytes_per_s": 5e6, "parallel_bytes_per_s": 2e7, "streams": 8, "bytes": 1,
                "seconds": 1, "retransmit_ratio": 0.0},
      "reasons": [], "advice": [], "predicted_seconds": 12.5, "tuning": {"transfers": 8}}


@pytest.fixture
def granted(alice, bob_receiver):
    checked_in(bob_receiver)
    return grant(bob_receiver, alice)


@pytest.fixture
def online(alice_sender):
    Container.objects.filter(pk=alice_sender.pk).update(last_seen_at=timezone.now())
    return alice_sender


def ask(api, sender, receiver, **more):
    return api.post(URL, {"sender": str(sender.pk), "receiver": str(receiver.pk), **more}, format="json")


def test_a_check_is_asked_offered_with_keys_answered_and_shown(alice_api, alice_agent, online, bob_receiver, granted):
    response = ask(alice_api, online, bob_receiver, total_bytes=10**9, files=10)
    assert response.status_code == 201 and response.json()["state"] == "pending"
    check_id = response.json()["check_id"]
    task = AgentTask.objects.get(kind="network_check")
    # The stored task holds no keys: they are added to the offer, for this agent only.
    assert granted.secret_key() not in str(task.params)
    offered = alice_agent.post(TASKS_NEXT, {"instance_id": "inst-1"}, format="json").json()["tasks"][0]
    destination = offered["params"]["destination"]
    assert destination["secret_key"] == granted.secret_key() and destination["bucket"] == granted.bucket
    assert offered["params"]["total_bytes"] == 10**9 and destination["certificate_sha256"]
    answered = alice_agent.post(f"/api/agent/v1/tasks/{task.pk}", {"instance_id": "inst-1", "ok": True,
                                                                   "result": GO}, format="json")
    assert answered.status_code == 200
    shown = alice_api.get(f"{URL}/{check_id}").json()
    assert shown["state"] == "done" and shown["verdict"] == "go" and shown["predicted_seconds"] == 12.5
    assert shown["rtt_ms"]["median"] == 1.2 and shown["probe"]["streams"] == 8
    assert granted.secret_key() not in str(alice_api.get(URL).json())


def test_a_refusal_by_the_agent_is_a_failed_check(alice_api, alice_agent, online, bob_receiver, granted):
    check_id = ask(alice_api, online, bob_receiver).json()["check_id"]
    task = AgentTask.objects.get(kind="network_check")
    alice_agent.post(f"/api/agent/v1/tasks/{task.pk}", {"instance_id": "inst-1", "ok": False,
                                                        "error": "no destination"}, format="json")
    shown = alice_api.get(f"{URL}/{check_id}").json()
    assert shown["state"] == "failed" and shown["error"] == "no destination" and shown["verdict"] is None


def test_a_check_nobody_answers_expires(alice_api, online, bob_receiver, granted):
    check_id = ask(alice_api, online, bob_receiver).json()["check_id"]
    AgentTask.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert alice_api.get(f"{URL}/{check_id}").json()["state"] == "expired"


def test_a_malformed_report_is_not_taken_as_a_verdict(alice_api, alice_agent, online, bob_receiver, granted):
    check_id = ask(alice_api, online, bob_receiver).json()["check_id"]
    task = AgentTask.objects.get(kind="network_check")
    alice_agent.post(f"/api/agent/v1/tasks/{task.pk}", {"instance_id": "inst-1", "ok": True,
                                                        "result": {"verdict": "no_go"}}, format="json")
    shown = alice_api.get(f"{URL}/{check_id}").json()
    assert shown["state"] == "failed" and "no-go needs a reason" in shown["error"]


@pytest.mark.parametrize("case, field", [("no grant", "receiver"), ("offline", "sender"), ("not mine", "sender"),
                                         ("bad size", "total_bytes")])
def test_refusals_name_the_field(alice_api, alice_sender, charlie_sender, bob_receiver, alice, case, field):
    checked_in(bob_receiver)
    if case != "no grant":
        grant(bob_receiver, alice)
    sender = charlie_sender if case == "not mine" else alice_sender
    if case != "offline":
        Container.objects.filter(pk=sender.pk).update(last_seen_at=timezone.now())
    more = {"total_bytes": -5} if case == "bad size" else {}
    response = ask(alice_api, sender, bob_receiver, **more)
    assert response.status_code == 400 and response.json()["field"] == field, response.json()
    assert not NetworkCheck.objects.exists() and not AgentTask.objects.exists()


def test_charlie_sees_none_of_alices_checks(alice_api, charlie_api, online, bob_receiver, granted):
    check_id = ask(alice_api, online, bob_receiver).json()["check_id"]
    assert charlie_api.get(f"{URL}/{check_id}").status_code == 404
    assert charlie_api.get(URL).json()["results"] == []


def test_a_transfers_check_and_samples_arrive_with_its_reports(alice, alice_agent, alice_sender, bob_receiver,
                                                                granted):
    transfer = send(alice, alice_sender, receiver=bob_receiver)
    command_id = claim(alice_agent).json()["command_id"]
    t0 = timezone.now().timestamp()
    progress = {"bytes": 0, "total_bytes": 100, "network_check": GO, "samples": [[t0, 0], [t0 + 1, 10**6]]}
    assert report(alice_agent, command_id, "running", progress=progress).status_code == 200
    # The same report again (its reply lost) is still one check.
    report(alice_agent, command_id, "running", progress=progress)
    transfer.refresh_from_db()
    assert NetworkCheck.objects.filter(transfer=transfer).count() == 1
    assert transfer.network_check.verdict == "go"
    assert transfer.throughput["points"] == [[pytest.approx(1.0, abs=2), 1e6]]
    body = token_client(alice).get(f"/api/v1/transfers/{transfer.pk}/status").json()
    assert body["network_check"]["verdict"] == "go" and body["throughput"]["points"]
    assert "samples" not in transfer.latest_command.progress and "network_check" not in transfer.latest_command.progress


@pytest.mark.parametrize("bad", ["x", [[1, 2, 3]], [["t", 1]], [[1.0, -1]], [[1.0, True]]])
def test_malformed_samples_are_refused(alice, alice_agent, alice_sender, bob_receiver, granted, bad):
    send(alice, alice_sender, receiver=bob_receiver)
    command_id = claim(alice_agent).json()["command_id"]
    response = report(alice_agent, command_id, "running", progress={"samples": bad})
    assert response.status_code == 400 and "samples" in response.json()["error"]


def test_the_series_stays_bounded_and_keeps_its_span():
    transfer = Transfer(throughput={}, bandwidth_limit="")
    samples = [(1000.0 + i, i * 1000) for i in range(2000)]
    throughput.add_samples(transfer, samples, "a")
    points = transfer.throughput["points"]
    assert len(points) <= throughput.MAX_POINTS and points[-1][0] >= 1900
    assert all(p[1] == pytest.approx(1000.0) for p in points)


def test_a_stall_is_flagged_once_then_recovered(settings):
    settings.DTN_STALL_SECONDS = 5
    transfer = Transfer(throughput={}, stalls=[], bandwidth_limit="", bytes_total=10**9, bytes_transferred=10**6)
    throughput.set_reference(transfer, GO)
    t, sent = 1000.0, 0
    changes = []
    for rate in [2e7] * 10 + [0] * 10 + [2e7] * 10:
        t, sent = t + 1, sent + int(rate)
        throughput.add_samples(transfer, [(t, sent)], "a")
        change = throughput.detect_stall(transfer, {"retries": 3, "errors": 1, "last_error": "timeout"})
        if change:
            changes.append(change)
    assert [kind for kind, _ in changes] == ["stall", "recovered"]
    assert "retries so far: 3" in changes[0][1] and "last error: timeout" in changes[0][1]
    assert transfer.stalls[0]["end_s"] is not None
