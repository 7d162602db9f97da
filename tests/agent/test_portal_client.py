"""The portal client over a fake transport: what each answer means to the agent."""

from __future__ import annotations

import random

import pytest
import requests

from agent.loop.portal import Backoff, CommandGone, PortalClient, PortalError, PortalUnavailable, TokenRejected
from tests.agent.fakes import FakeResponse, FakeSession

TOKEN = "dtn_agent_0123456789ab_supersecretpart"


def client(*answers):
    session = FakeSession(*answers)
    return PortalClient("https://portal.example.org/", TOKEN, "inst-1", session=session), session


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_is_token_rejected(status):
    portal, _ = client(FakeResponse(status, {"error": "invalid agent token"}))
    with pytest.raises(TokenRejected):
        portal.heartbeat({})


@pytest.mark.parametrize("answer", [FakeResponse(500, {}), FakeResponse(502, None), FakeResponse(429, {}),
                                    requests.ConnectionError("refused"), requests.ReadTimeout("slow")])
def test_server_and_network_trouble_is_retryable_and_never_shows_the_token(answer):
    portal, _ = client(answer)
    with pytest.raises(PortalUnavailable) as raised:
        portal.claim(5)
    assert TOKEN not in str(raised.value)


@pytest.mark.parametrize("status", [404, 409])
def test_a_report_for_a_command_no_longer_ours_is_command_gone(status):
    portal, _ = client(FakeResponse(status, {"error": "this agent instance does not hold the command's lease"}))
    with pytest.raises(CommandGone) as raised:
        portal.report("c1", "running", progress={})
    assert "does not hold" in str(raised.value)


def test_a_claim_with_nothing_to_do_is_empty_and_a_claimed_command_comes_back():
    portal, session = client(FakeResponse(204), FakeResponse(201, {"command_id": "c1", "kind": "transfer"}))
    empty = portal.claim(25)
    assert empty.command is None and empty.tasks == []
    assert portal.claim(2.5).command["command_id"] == "c1"
    first, second = session.requests
    assert first["url"] == "https://portal.example.org/api/agent/v1/commands/next"
    assert first["params"] == {"wait": "25"} and first["json"] == {"instance_id": "inst-1"}
    # The read timeout outlasts the hold, so a held claim is never cut short by the agent.
    assert first["timeout"] > 25 and second["params"] == {"wait": "2.5"}


def test_a_claim_that_takes_tasks_says_so_and_brings_them_back():
    task = {"task_id": "t1", "kind": "list_send_folder", "params": {}}
    portal, session = client(FakeResponse(200, {"tasks": [task]}), FakeResponse(204))
    claimed = portal.claim(30, tasks=True)
    assert claimed.command is None and claimed.tasks == [task]
    assert session.requests[0]["json"] == {"instance_id": "inst-1", "tasks": True}
    assert portal.claim(30, tasks=True).tasks == []


def test_a_report_carries_state_progress_reason_and_message_and_returns_the_stop_flag():
    portal, session = client(FakeResponse(200, {"command_id": "c1", "state": "failed", "cancel_requested": False}))
    reply = portal.report("c1", "failed", progress={"bytes": 1}, reason="auth_failed", message="x" * 5000)
    sent = session.requests[0]
    assert sent["method"] == "PATCH" and sent["url"].endswith("/api/agent/v1/commands/c1")
    assert sent["json"]["reason"] == "auth_failed" and len(sent["json"]["message"]) == 4000
    assert reply.cancel_requested is False and reply.state == "failed"


def test_other_refusals_are_plain_portal_errors_with_the_portals_words():
    portal, _ = client(FakeResponse(400, {"error": "progress.bytes: must be a whole number", "field": "progress"}))
    with pytest.raises(PortalError) as raised:
        portal.report("c1", "running", progress={"bytes": -1})
    assert not isinstance(raised.value, (PortalUnavailable, TokenRejected, CommandGone))
    assert "must be a whole number" in str(raised.value)


def test_a_task_answer_posts_to_the_tasks_endpoint():
    portal, session = client(FakeResponse(200, {}))
    portal.answer_task("t9", ok=True, result={"entries": []})
    assert session.requests[0]["url"].endswith("/api/agent/v1/tasks/t9")
    assert session.requests[0]["json"] == {"instance_id": "inst-1", "ok": True, "result": {"entries": []},
                                           "error": ""}


def test_backoff_doubles_to_a_cap_with_jitter_in_the_upper_half():
    backoff = Backoff(base=1, cap=60, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(9)]
    for delay, ceiling in zip(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]):
        assert ceiling / 2 <= delay <= ceiling
    backoff.reset()
    assert backoff.next_delay() <= 1


def test_the_task_long_poll_returns_tasks_or_nothing_and_the_verdict_rides_on_report_replies():
    portal, session = client(FakeResponse(204), FakeResponse(200, {"tasks": [{"task_id": "t1"}]}),
                             FakeResponse(200, {"state": "running", "cancel_requested": False,
                                                "verification": {"state": "pending"}}))
    assert portal.wait_tasks(25) == []
    assert portal.wait_tasks(25) == [{"task_id": "t1"}]
    assert session.requests[0]["url"].endswith("/api/agent/v1/tasks/next") and session.requests[0]["timeout"] > 25
    assert portal.report("c1", "running", progress={"phase": "verifying"}).verification == {"state": "pending"}


def test_a_failure_message_never_carries_a_known_secret():
    from agent import logs
    from agent.loop.portal import PortalClient
    from tests.agent.fakes import FakeResponse, FakeSession

    logs.redact("s3-secret-0123456789")
    session = FakeSession(FakeResponse(200, {"state": "failed", "cancel_requested": False}))
    client = PortalClient("http://portal.test", "dtn_agent_x_y", "instance-1", session=session)
    client.report("c1", "failed", reason="rclone_error", message="rclone said: bad key s3-secret-0123456789")
    assert session.requests[0]["json"]["message"] == "rclone said: bad key ***"


# --- Reports too large for one request ----------------------------------------------------------------


def files(count):
    return [{"path": f"data/f{n:04d}", "size": 1, "sha256": "", "outcome": "sent", "error": ""}
            for n in range(count)]


def big_report(count=40):
    return {"bytes": count, "files_total": count, "files": files(count),
            "events": [{"at": "2026-01-01T00:00:00Z", "kind": "retry", "message": "m"}],
            "samples": [[0, 1]], "network_check": {"verdict": "go"}}


class EchoSession(FakeSession):
    """Takes every report, answering with the state it said."""

    def request(self, method, url, **kwargs):
        self.queue(FakeResponse(200, {"state": kwargs["json"]["state"], "cancel_requested": False}))
        return super().request(method, url, **kwargs)


def sent_files(session):
    return [item["path"] for call in session.requests for item in call["json"]["progress"]["files"]]


def test_an_oversized_report_goes_in_pieces_with_every_file(monkeypatch):
    import agent.loop.portal

    monkeypatch.setattr(agent.loop.portal, "MAX_REPORT_BYTES", 1000)
    session = EchoSession()
    portal = PortalClient("https://portal.example.org/", TOKEN, "inst-1", session=session)
    progress = big_report()
    reply = portal.report("c1", "succeeded", progress=progress)

    assert reply.state == "succeeded"
    calls = session.requests
    assert len(calls) > 2
    assert sorted(sent_files(session)) == [item["path"] for item in progress["files"]]
    assert [call["json"]["state"] for call in calls] == ["running"] * (len(calls) - 1) + ["succeeded"]
    assert all(len(call["json"]["progress"]["files"]) > 0 for call in calls)
    # The counters go with every piece; what the portal would count twice goes once.
    assert all(call["json"]["progress"]["files_total"] == 40 for call in calls)
    for key in ("samples", "network_check", "events"):
        assert sum(1 for call in calls if call["json"]["progress"].get(key)) == 1


def test_a_report_the_portal_finds_too_large_is_split_and_sent_again():
    ok = FakeResponse(200, {"state": "running", "cancel_requested": False})
    too_large = FakeResponse(413, {"error": "the request body is larger than 1024 bytes", "field": None})
    portal, session = client(too_large, ok, ok)
    progress = big_report(10)

    portal.report("c1", "running", progress=progress)

    assert len(session.requests) == 3
    assert sorted(sent_files(session)[10:]) == [item["path"] for item in progress["files"]]


def test_a_report_too_large_with_nothing_to_split_is_an_error():
    portal, _ = client(FakeResponse(413, {"error": "the request body is larger than 1024 bytes", "field": None}))
    with pytest.raises(PortalError) as raised:
        portal.report("c1", "running", progress={"bytes": 1, "files": files(1)})
    assert raised.value.status == 413
