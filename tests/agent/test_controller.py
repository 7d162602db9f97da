"""The agent's loop, one step at a time, over a fake portal transport and a fake clock."""

from __future__ import annotations

import random

import pytest

from agent.loop.controller import Controller
from agent.loop.portal import PortalClient, TokenRejected
from dtn_protocol.failures import FailureReason
from dtn_protocol.states import CommandState
from agent.loop.sidechannel import SideChannel
from agent.sender import Outcome
from tests.agent.fakes import FakeClock, FakeResponse, FakeSession, unavailable

HEARTBEAT = {"server_time": "2026-01-01T00:00:00Z", "heartbeat_seconds": 15, "claim_hold_seconds": 25,
             "lease_seconds": 90, "failure_reasons": []}


def transfer_command(command_id="c1", kind="transfer"):
    return {"command_id": command_id, "kind": kind, "payload": {}, "state": "claimed", "attempt": 1,
            "progress": {}}


class ScriptedRunner:
    """Stands in for TransferRunner: sends the reports it is given, then returns the outcome."""

    def __init__(self, outcome: Outcome, reports: int = 0):
        self.outcome = outcome
        self.reports = reports
        self.ran: list[dict] = []
        self.replies = []

    def run(self, command, channel):
        self.ran.append(command)
        for _ in range(self.reports):
            channel.tick()
            self.replies.append(channel.report({"bytes": 1}))
        return self.outcome


def controller(session, runner=None, side=None, clock=None):
    clock = clock or FakeClock()
    portal = PortalClient("http://portal.test", "dtn_agent_x_y", "instance-1", session=session)
    return Controller(portal=portal, runner=runner or ScriptedRunner(Outcome(CommandState.SUCCEEDED)),
                      side=side, describe=lambda: {"agent_version": "0.1.0"}, clock=clock, sleep=clock.sleep,
                      rng=random.Random(7)), clock


def paths(session):
    return [(r["method"], r["url"].rsplit("/v1/", 1)[1]) for r in session.requests]


def test_a_step_heartbeats_claims_runs_the_command_and_reports_its_outcome():
    session = FakeSession(FakeResponse(200, HEARTBEAT), FakeResponse(201, transfer_command()),
                          FakeResponse(200, {"state": "succeeded", "cancel_requested": False}))
    agent, clock = controller(session, ScriptedRunner(Outcome(CommandState.SUCCEEDED, progress={"bytes": 5})))
    agent.step()
    assert paths(session) == [("POST", "heartbeat"), ("POST", "commands/next"), ("PATCH", "commands/c1")]
    heartbeat, claim, report = session.requests
    assert heartbeat["json"] == {"instance_id": "instance-1", "agent_version": "0.1.0"}
    assert heartbeat["headers"]["Authorization"] == "Bearer dtn_agent_x_y"
    # The claim is held at most until the next heartbeat is due.
    assert claim["params"] == {"wait": "15"} and claim["timeout"] == 30
    assert report["json"] == {"instance_id": "instance-1", "state": "succeeded", "progress": {"bytes": 5}}
    assert clock.slept == []


def test_an_idle_step_does_not_heartbeat_again_before_it_is_due():
    session = FakeSession(FakeResponse(200, HEARTBEAT), FakeResponse(204), FakeResponse(204))
    agent, clock = controller(session)
    agent.step()
    clock.now += 10  # the held claim took 10 s
    agent.step()
    assert paths(session) == [("POST", "heartbeat"), ("POST", "commands/next"), ("POST", "commands/next")]
    assert session.requests[2]["params"] == {"wait": "5"}


def test_portal_errors_back_off_with_jitter_up_to_about_a_minute_then_reset():
    session = FakeSession(*[unavailable() for _ in range(9)], FakeResponse(502, {"error": "bad gateway"}))
    agent, clock = controller(session)
    waits = []
    for _ in range(10):
        before = clock.now
        agent.step()
        waits.append(clock.now - before)
    ceilings = [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    assert all(c / 2 <= w <= c for w, c in zip(waits, ceilings)), waits
    assert len(set(round(w, 3) for w in waits[-4:])) > 1  # jittered, not in step with other agents
    session.queue(FakeResponse(200, HEARTBEAT), FakeResponse(204), unavailable())
    agent.step()
    before = clock.now
    agent.next_beat = 0
    agent.step()
    assert clock.now - before <= 1.0


def test_a_rejected_token_ends_the_loop():
    session = FakeSession(FakeResponse(401, {"error": "invalid agent token"}))
    agent, _ = controller(session)
    with pytest.raises(TokenRejected):
        agent.step()


def test_a_command_whose_lease_went_elsewhere_is_dropped_and_the_loop_goes_on():
    session = FakeSession(FakeResponse(200, HEARTBEAT), FakeResponse(201, transfer_command()),
                          FakeResponse(409, {"error": "this agent instance does not hold the command's lease"}),
                          FakeResponse(204))
    runner = ScriptedRunner(Outcome(CommandState.SUCCEEDED), reports=1)
    agent, _ = controller(session, runner)
    agent.step()
    agent.step()
    assert paths(session)[-1] == ("POST", "commands/next")
    assert agent.current_command is None


def test_the_stop_carried_by_a_report_reply_reaches_the_runner():
    session = FakeSession(FakeResponse(200, HEARTBEAT), FakeResponse(201, transfer_command()),
                          FakeResponse(200, {"state": "running", "cancel_requested": True}),
                          FakeResponse(200, {"state": "canceled", "cancel_requested": True}))
    runner = ScriptedRunner(Outcome(CommandState.CANCELED, message="stopped by a person"), reports=1)
    agent, _ = controller(session, runner)
    agent.step()
    assert runner.replies[0].cancel_requested is True
    assert session.requests[-1]["json"]["state"] == "canceled"


def test_a_command_kind_this_agent_does_not_run_fails_with_agent_error():
    session = FakeSession(FakeResponse(200, HEARTBEAT), FakeResponse(201, transfer_command(kind="reboot")),
                          FakeResponse(200, {"state": "failed", "cancel_requested": False}))
    runner = ScriptedRunner(Outcome(CommandState.SUCCEEDED))
    agent, _ = controller(session, runner)
    agent.step()
    assert runner.ran == []
    report = session.requests[-1]["json"]
    assert report["state"] == "failed" and report["reason"] == FailureReason.AGENT_ERROR
    assert "'reboot'" in report["message"]


def test_the_outcome_is_reported_again_until_the_portal_takes_it():
    session = FakeSession(FakeResponse(200, HEARTBEAT), FakeResponse(201, transfer_command()),
                          unavailable(), FakeResponse(503, {}), FakeResponse(200, {"state": "succeeded"}))
    agent, clock = controller(session)
    agent.step()
    assert [r["json"]["state"] for r in session.requests[2:]] == ["succeeded"] * 3
    assert len(clock.slept) == 2


def test_an_outcome_refused_as_malformed_is_sent_again_without_its_progress():
    session = FakeSession(FakeResponse(200, HEARTBEAT), FakeResponse(201, transfer_command()),
                          FakeResponse(400, {"error": "progress.files[0].sha256: must be 64 hex digits"}),
                          FakeResponse(200, {"state": "succeeded"}))
    agent, _ = controller(session, ScriptedRunner(Outcome(CommandState.SUCCEEDED, progress={"files": ["x"]})))
    agent.step()
    assert "progress" in session.requests[2]["json"] and "progress" not in session.requests[3]["json"]


def test_on_shutdown_the_last_progress_is_reported_with_the_command_still_running():
    session = FakeSession(FakeResponse(200, HEARTBEAT), FakeResponse(201, transfer_command()),
                          FakeResponse(200, {"state": "running", "cancel_requested": False}))
    agent, _ = controller(session, ScriptedRunner(Outcome(None, progress={"bytes": 9})))
    agent.step()
    assert session.requests[-1]["json"] == {"instance_id": "instance-1", "state": "running",
                                            "progress": {"bytes": 9}}


def test_heartbeats_continue_while_a_long_command_runs():
    session = FakeSession(FakeResponse(200, HEARTBEAT), FakeResponse(201, transfer_command()))
    clock = FakeClock()

    class Long:
        def run(self, command, channel):
            for _ in range(40):  # 40 s of transfer, a tick a second
                clock.now += 1
                channel.tick()
            return Outcome(CommandState.SUCCEEDED)

    session.queue(FakeResponse(200, HEARTBEAT), FakeResponse(200, HEARTBEAT),
                  FakeResponse(200, {"state": "succeeded"}))
    agent, _ = controller(session, Long(), clock=clock)
    agent.step()
    assert [p for _, p in paths(session)].count("heartbeat") == 3


def test_side_channel_tasks_from_a_heartbeat_reply_go_to_the_side_channel():
    session = FakeSession(FakeResponse(200, {**HEARTBEAT, "tasks": [
        {"task_id": "t1", "kind": "list_send_folder", "params": {}},
        {"task_id": "t2", "kind": "verify_files", "params": {"paths": ["a"]}}]}), FakeResponse(204))

    class Recorder(SideChannel):
        def __init__(self):
            super().__init__(portal=None)
            self.taken = []

        def submit(self, tasks):
            self.taken.extend(tasks)
            return len(tasks)

    side = Recorder()
    agent, _ = controller(session, side=side)
    agent.step()
    assert [t["task_id"] for t in side.taken] == ["t1", "t2"]


class PollRecorder(SideChannel):
    """A side channel that records what it is handed and when it was told to long-poll itself."""

    def __init__(self):
        super().__init__(portal=None)
        self.taken, self.polls_alone = [], []

    def submit(self, tasks):
        self.taken.extend(tasks)
        return len(tasks)

    def poll_alone(self, wanted):
        self.polls_alone.append(wanted)
        super().poll_alone(wanted)


def test_an_idle_agents_claim_brings_the_side_channel_tasks_and_the_side_channel_polls_only_during_a_command():
    task = {"task_id": "t9", "kind": "list_send_folder", "params": {}}
    session = FakeSession(FakeResponse(200, HEARTBEAT), FakeResponse(200, {"tasks": [task]}),
                          FakeResponse(201, transfer_command()),
                          FakeResponse(200, {"state": "succeeded", "cancel_requested": False}))
    side = PollRecorder()
    polled_during_run = []

    class Runner(ScriptedRunner):
        def run(self, command, channel):
            polled_during_run.append(side._poll_wanted.is_set())
            return super().run(command, channel)

    agent, _ = controller(session, Runner(Outcome(CommandState.SUCCEEDED)), side=side)
    # Idle: the claims take the tasks, so the side channel does not hold a second long-poll.
    assert side.polls_alone == [False] and not side._poll_wanted.is_set()
    agent.step()
    assert paths(session) == [("POST", "heartbeat"), ("POST", "commands/next")]
    assert session.requests[1]["json"] == {"instance_id": "instance-1", "tasks": True}
    assert side.taken == [task]
    agent.step()
    # While the command ran, nothing claimed: the side channel polled alone; afterwards the claims again.
    assert polled_during_run == [True] and side.polls_alone == [False, True, False]


def test_a_signal_during_a_step_stops_the_loop_before_the_next_claim():
    session = FakeSession(FakeResponse(200, HEARTBEAT), FakeResponse(204))
    agent, _ = controller(session)
    agent.step()
    agent.request_shutdown()
    agent.run()
    assert len(session.requests) == 2


def test_a_heartbeat_refused_during_a_run_does_not_end_the_command():
    session = FakeSession(FakeResponse(200, HEARTBEAT), FakeResponse(201, transfer_command()))
    clock = FakeClock()

    class Long:
        def run(self, command, channel):
            clock.now += 20
            channel.tick()  # the heartbeat is due: the portal refuses it
            return Outcome(CommandState.SUCCEEDED)

    session.queue(FakeResponse(400, {"error": "health: not an object"}), FakeResponse(200, {"state": "succeeded"}))
    agent, _ = controller(session, Long(), clock=clock)
    agent.step()
    assert session.requests[-1]["json"]["state"] == "succeeded"


def test_a_site_that_only_receives_heartbeats_and_never_claims():
    session = FakeSession(FakeResponse(200, HEARTBEAT), FakeResponse(200, HEARTBEAT))
    clock = FakeClock()
    portal = PortalClient("http://portal.test", "dtn_agent_x_y", "instance-1", session=session)
    agent = Controller(portal=portal, runner=None, describe=dict, clock=clock, sleep=clock.sleep)
    agent.step()
    agent.step()
    assert paths(session) == [("POST", "heartbeat"), ("POST", "heartbeat")]
    assert clock.slept == [15, 15]


def test_a_changed_receiver_is_reported_at_once_after_the_beat_that_changed_it():
    session = FakeSession(FakeResponse(200, {**HEARTBEAT, "role": "receiver"}),
                          FakeResponse(200, {**HEARTBEAT, "role": "receiver"}))
    clock = FakeClock()
    portal = PortalClient("http://portal.test", "dtn_agent_x_y", "instance-1", session=session)
    changes = iter([True, False])
    seen = []
    agent = Controller(portal=portal, runner=None, describe=dict, clock=clock, sleep=clock.sleep,
                       after_beat=lambda reply: seen.append(reply["role"]) or next(changes))
    agent.step()  # beats, learns the grants changed: the next beat is due now
    agent.step()
    assert paths(session) == [("POST", "heartbeat"), ("POST", "heartbeat")]
    assert seen == ["receiver", "receiver"]
    assert clock.slept == [0, 15]


def test_an_idle_senders_claims_stand_for_its_heartbeats_but_every_tenth_beat_is_full():
    from agent.loop.controller import FULL_BEAT_EVERY

    session = FakeSession(FakeResponse(200, HEARTBEAT))
    marks = []
    agent, clock = controller(session)
    agent.heartbeat_marker = marks.append
    for beat in range(2 * FULL_BEAT_EVERY):
        if beat == FULL_BEAT_EVERY:
            session.queue(FakeResponse(200, HEARTBEAT))
        session.queue(FakeResponse(204))
        agent.step()
        clock.now += 15  # the claim was held until the next beat was due
    kinds = [path for _, path in paths(session)]
    assert not session.answers
    beats = [i for i, path in enumerate(kinds) if path == "heartbeat"]
    # One full heartbeat, then claims alone for nine beats, then a full one again.
    assert kinds.count("commands/next") == 2 * FULL_BEAT_EVERY
    assert len(beats) == 2 and beats[1] - beats[0] == FULL_BEAT_EVERY + 1
    # Every answered claim counts as a sign of life for the container's health check.
    assert len(marks) == 2 + 2 * FULL_BEAT_EVERY


def test_an_agent_with_a_receiver_site_or_a_running_command_sends_every_beat_in_full():
    session = FakeSession(FakeResponse(200, HEARTBEAT), FakeResponse(204), FakeResponse(200, HEARTBEAT),
                          FakeResponse(204))
    agent, clock = controller(session)
    agent.after_beat = lambda reply: False
    agent.step()
    clock.now += 15
    agent.step()
    assert [path for _, path in paths(session)] == ["heartbeat", "commands/next", "heartbeat", "commands/next"]
