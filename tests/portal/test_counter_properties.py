"""The counters' invariants (issue 19), checked after every step of random sequences of an agent's reports,
a person's stops and restarts, lost leases and fresh claims, all through the portal's real APIs (the agent
API for claims and reports, the people's API for stop, restart and the record):

- bytes: 0 <= transferred + skipped <= total; every byte moved is counted once, as progress or as re-sent
  (transferred + resent = all bytes the agents reported moving); progress never counts a byte twice (at most
  the distinct bytes of the dataset ever moved) and never less than the files reported sent;
- files: transferred + skipped + failed <= total, and the files sent are counted as they are reported;
- each attempt's own figures: done <= total;
- the overall speed is over active time only: it does not move while no attempt runs;
- a person's stop reads as canceled_by_user with a plain sentence, whatever rclone said;
- a finished transfer is whole: transferred + skipped = total; the CLI's line and the page agree with the API.

The simulated agent behaves as the real one does: a new lease finds the files already there (reports them
skipped), sends a half-sent file again from its start, and reports absolute counters for its lease. When the
first file is large enough for the agent's own resumable upload (`resumable`), a new lease instead goes on
from what the receiver holds of it and reports those bytes as `resumed_bytes`."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given, settings, strategies as st

from dtn_protocol.units import human_bytes
from portal.cli.progress import progress_line
from portal.transfers import reaper
from portal.transfers.models import Command, Transfer
from portal.transfers.queue import STOPPED_SENTENCE
from tests.portal.conftest import agent_client, register, token_client
from tests.portal.sending import HAND_S3, claim, report, send

pytestmark = pytest.mark.usefixtures("agent_threads_db")

API = "/api/v1/transfers"
_people = itertools.count(1)

# One step: what happens next. Steps that do not apply now (a restart of a running transfer) are no-ops.
ADVANCE = st.tuples(st.just("advance"), st.integers(0, 5), st.integers(1, 3000))
STEPS = st.one_of(
    ADVANCE, ADVANCE, ADVANCE,
    st.tuples(st.just("claim")),
    st.tuples(st.just("stop")),
    st.tuples(st.just("restart")),
    st.tuples(st.just("lose_lease"), st.booleans()),
    st.tuples(st.just("fail")),
    st.tuples(st.just("finish")),
)


@dataclass
class SimAgent:
    """The sender as the portal sees it: one lease at a time, absolute counters per lease."""

    sizes: list[int]
    instance: int = 0
    command_id: str | None = None
    lease_moved: int = 0  # bytes this lease moved, as the agent reports them
    moved: int = 0  # bytes every lease moved (what the portal was told)
    landed: set = field(default_factory=set)  # files whole at the destination
    partial: dict = field(default_factory=dict)  # this lease's bytes of each file in flight
    high: dict = field(default_factory=dict)  # the most of each file ever at the destination
    sent_rows: set = field(default_factory=set)  # files the portal was told this transfer sent
    skipped_rows: set = field(default_factory=set)
    unreported: set = field(default_factory=set)  # landed, not yet told (lost with a lease)
    first_report: bool = False
    resumable: bool = False  # file 0 goes by the agent's own multipart upload: a new lease resumes it
    resumed: int = 0  # this lease's resumed_bytes

    @property
    def total(self) -> int:
        return sum(self.sizes)

    def progress(self, files: list[dict]) -> dict:
        done = len(self.landed)
        return {"bytes": self.lease_moved, "total_bytes": self.total, "files_done": done,
                "files_total": len(self.sizes), "errors": 0, "retries": 0, "speed": 100.0, "eta": None,
                "resumed_bytes": self.resumed, "files": files, "events": []}

    def file(self, index: int, outcome: str, error: str = "") -> dict:
        return {"path": f"data/f{index}", "size": self.sizes[index], "sha256": "", "outcome": outcome, "error": error}


class Run:
    def __init__(self, sizes: list[int], resumable: bool = False):
        user = get_user_model().objects.create_user(f"prop{next(_people)}", password="x" * 20)
        self.person = token_client(user)
        self.page = Client()
        self.page.force_login(user)
        self.sender = register(user, f"sender-{user.username}", "sender")
        self.agent_api = agent_client(self.sender)
        self.transfer = send(user, self.sender, s3=HAND_S3, sources=["data"])
        self.sim = SimAgent(sizes, resumable=resumable)
        self.idle_active_time: float | None = None
        self.stopped_by_agent = False  # the agent ended its attempt because the person stopped it

    # --- the agent -------------------------------------------------------------------------------

    def _report(self, state: str, files=(), **fields):
        sim = self.sim
        body = self.sim.progress(list(files))
        if sim.first_report:
            # A new lease compares first: what is already there is skipped, not sent again.
            body["files"] = [sim.file(i, "skipped") for i in sorted(sim.landed - sim.sent_rows)] + body["files"]
            sim.skipped_rows |= sim.landed - sim.sent_rows
            sim.unreported.clear()
            sim.first_report = False
        response = report(self.agent_api, sim.command_id, state, instance_id=f"inst-{sim.instance}",
                          progress=body, **fields)
        assert response.status_code == 200, response.content
        return response.json()

    def claim(self):
        sim = self.sim
        if sim.command_id is not None:
            return
        sim.instance += 1
        response = claim(self.agent_api, f"inst-{sim.instance}")
        if response.status_code != 201:
            return  # nothing queued
        sim.command_id = response.json()["command_id"]
        # The receiver still holds what the last lease sent of a resumable file: the new lease goes on from there.
        held = sim.partial.get(0, 0) if sim.resumable and 0 not in sim.landed else 0
        sim.lease_moved, sim.partial, sim.first_report = 0, ({0: held} if held else {}), True
        sim.resumed = held
        self.idle_active_time = None  # an attempt runs: its time counts
        self.stopped_by_agent = False
        self._running()

    def _running(self, files=()):
        reply = self._report("running", files)
        if reply.get("cancel_requested"):
            self._canceled()

    def _canceled(self):
        sim = self.sim
        cut = [sim.file(i, "failed", "multi-thread copy: upload failed: context canceled") for i in sim.partial]
        if len(sim.partial) % 2:
            # The stop reached rclone first: the agent saw a failed job.
            self._report("failed", cut, reason="rclone_error",
                         message="multi-thread copy: failed to write chunk: context canceled")
        else:
            self._report("canceled", cut, message="stopped by a person")
        sim.command_id = None
        self.stopped_by_agent = True

    def advance(self, index: int, amount: int):
        sim = self.sim
        if sim.command_id is None:
            return
        index %= len(sim.sizes)
        if index in sim.landed:
            return
        have = sim.partial.get(index, 0)
        step = min(amount, sim.sizes[index] - have)
        sim.partial[index] = have + step
        sim.lease_moved += step
        sim.moved += step
        sim.high[index] = max(sim.high.get(index, 0), have + step)
        files = []
        if sim.partial[index] == sim.sizes[index]:
            del sim.partial[index]
            sim.landed.add(index)
            files.append(sim.file(index, "sent"))
            sim.sent_rows.add(index)
        self._running(files)

    def lose_lease(self, landed_one_more: bool):
        """The agent dies; perhaps a file landed that it never reported. The reaper takes the lease back."""
        sim = self.sim
        if sim.command_id is None:
            return
        if landed_one_more and sim.partial:
            index = next(iter(sim.partial))
            rest = sim.sizes[index] - sim.partial.pop(index)
            sim.high[index] = sim.sizes[index]
            sim.landed.add(index)
            sim.unreported.add(index)
            del rest  # moved, but never reported: the portal cannot count it, and the model does not either
        Command.objects.filter(pk=sim.command_id).update(lease_expires_at=timezone.now() - timedelta(days=1))
        reaper.reap_expired_leases()
        sim.command_id = None

    def fail(self):
        sim = self.sim
        if sim.command_id is None:
            return
        self._report("failed", reason="receiver_unreachable", message="no route to host")
        sim.command_id = None

    def finish(self):
        sim = self.sim
        if sim.command_id is None or len(sim.landed) != len(sim.sizes):
            return
        self._report("succeeded")
        sim.command_id = None

    # --- the person ------------------------------------------------------------------------------

    def stop(self):
        self.person.post(f"{API}/{self.transfer.pk}/stop")

    def restart(self):
        if self.person.post(f"{API}/{self.transfer.pk}/restart").status_code == 201:
            self.stopped_by_agent = False  # a new attempt: the stop is history

    # --- the invariants --------------------------------------------------------------------------

    def check(self, step):
        sim = self.sim
        record = self.person.get(f"{API}/{self.transfer.pk}").json()
        b, f = record["bytes"], record["files"]
        where = f"after {step}: {b} {f}"
        assert min(b.values()) >= 0 and min(f.values()) >= 0, where
        if b["total"]:
            assert b["transferred"] + b["skipped"] <= b["total"], where
        assert f["transferred"] + f["skipped"] + f["failed"] <= f["total"] or not f["total"], where
        # Every byte moved is progress or re-sent, never both, never lost.
        assert b["transferred"] + b["resent"] == sim.moved, where
        # Progress counts a byte once: at most the distinct bytes ever at the destination...
        assert b["transferred"] <= sum(sim.high.values()), where
        # ... and at least the files reported sent (they are whole there).
        assert b["transferred"] >= sum(sim.sizes[i] for i in sim.sent_rows), where
        # Files are counted as they are reported.
        assert f["transferred"] == len(sim.sent_rows), where
        for attempt in record["commands"]:
            assert attempt["files"]["done"] <= attempt["files"]["total"] or not attempt["files"]["total"], where
            assert attempt["bytes"]["done"] <= attempt["bytes"]["total"] or not attempt["bytes"]["total"], where
        fatal = record["fatal_error"]
        if record["state"] != "active":
            # Speed and ETA are over active time only: an attempt that does not run has neither.
            assert record["speed"] is None and record["eta"] is None, where
        if self.stopped_by_agent:
            # However the agent ended it (canceled, or a failed job whose "context canceled" was the stop).
            assert record["state"] == "canceled", where
        if record["state"] == "canceled":
            assert fatal["reason"] == "canceled_by_user", where
            assert fatal["message"] in (STOPPED_SENTENCE, "stopped before it started",
                                        "stopped while the agent was not reporting"), where
        if record["state"] == "succeeded":
            assert b["transferred"] + b["skipped"] == b["total"], where
            assert f["transferred"] + f["skipped"] == f["total"], where
        # Speed over active time only: with no attempt leased, the active time stands still.
        transfer = Transfer.objects.get(pk=self.transfer.pk)
        if record["state"] == "active":
            self.idle_active_time = None
        else:
            active = transfer.active_time()
            if self.idle_active_time is not None:
                assert active == self.idle_active_time, where
            self.idle_active_time = active
            if active > 0:
                assert record["effective_speed"] == round(sim.moved / active, 1), where
        if transfer.started_at is not None:
            assert transfer.active_time() <= (timezone.now() - transfer.started_at).total_seconds() + 1e-3, where
        return record

    def check_views(self, record):
        """The CLI's line and the page show the API's figures, in the same IEC form."""
        b = record["bytes"]
        done = b["transferred"] + b["skipped"]
        line = progress_line(record, with_bar=False)
        total = human_bytes(b["total"]) if b["total"] else "?"
        assert f"{human_bytes(done)}/{total}" in line, line
        assert (f"+{human_bytes(b['resent'])} re-sent" in line) == bool(b["resent"]), line
        percent = int(re.match(r"\s*(\d+|\?)", line).group(1).replace("?", "0"))
        assert 0 <= percent <= 100, line
        html = self.page.get(f"/portal/transfers/{self.transfer.pk}/").content.decode().replace("\xa0", " ")
        shown = re.search(r'data-field="bytes">([^<]*)<', html).group(1)
        assert shown == f"{human_bytes(done)} of {total}", shown
        if b["resent"]:
            assert f"(+{human_bytes(b['resent'])} re-sent)" in html


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(0, 6000), min_size=1, max_size=6),
       steps=st.lists(STEPS, min_size=1, max_size=30), resumable=st.booleans())
def test_every_counter_invariant_holds_after_every_step(sizes, steps, resumable):
    run = Run(sizes, resumable)
    record = run.check("send")
    for step in [("claim",), *steps]:
        getattr(run, step[0])(*step[1:])
        record = run.check(step)
    run.check_views(record)
    # And to the end: stopped (whatever is half-sent is sent again), restarted, the agent claims, sends what
    # is missing and finishes; the transfer is whole.
    run.stop()
    run.advance(0, 1)
    record = run.check("the last stop")
    for _ in range(3):
        if record["state"] in ("canceled", "failed"):
            run.restart()
        run.claim()
        for index in range(len(sizes)):
            run.advance(index, 10**6)
        run.finish()
        record = run.check("the end")
        if record["state"] == "succeeded":
            break
    assert record["state"] == "succeeded", record
    run.check_views(record)



def test_a_resumed_large_file_counts_the_parts_the_receiver_held_as_done_not_resent():
    """Stopped at 2,000 of 5,000 bytes, restarted: the new lease sends the other 3,000 and says the receiver
    held 2,000. Transferred is the whole file, nothing re-sent (without resumed_bytes: 3,000 and 2,000...)."""
    run = Run([5000], resumable=True)
    run.claim()
    run.advance(0, 2000)
    run.stop()
    run.advance(0, 1)  # the agent sees the stop
    run.restart()
    run.claim()
    run.advance(0, 10**6)
    run.finish()
    record = run.check("the end")
    assert record["state"] == "succeeded"
    assert record["bytes"]["transferred"] == 5000 and record["bytes"]["resent"] == 0, record["bytes"]
