"""The lease keeper: every wait of an attempt goes through `Lease.wait`, so that while
it waits the command stays this agent's. Each turn it lets the controller heartbeat
when one is due, hears a shutdown (Interrupted), and reports progress when a report
is due, whose reply may ask to stop (Canceled). A report is also what renews the
lease at the portal (docs/protocol.md)."""

from __future__ import annotations

import itertools
from typing import Callable, Iterable, Protocol

from agent.loop.portal import ReportReply
from agent.rclone import RcError, RcUnavailable
from agent.sender.errors import Canceled, Interrupted, TransferFailed
from agent.sender.meter import Meter
from dtn_protocol.failures import FailureReason

# How often a waiting attempt keeps its lease (and looks at a running job).
POLL_SECONDS = 0.25
# A clock read just after a pause of exactly the time left may fall short of it by a rounding.
_SLACK = 1e-6
# How long rclone may be away (restarting) before the command fails.
RCLONE_COMEBACK_SECONDS = 60.0
RCLONE_RETRY_SECONDS = 1.0


class Channel(Protocol):
    """What the attempt needs from the controller."""

    stopping: bool

    def report(self, progress: dict) -> ReportReply | None:
        """Send a `running` report; None when the portal could not be reached this time."""

    def tick(self) -> None:
        """Called often: the controller's chance to heartbeat during a long transfer."""


class Lease:
    def __init__(self, channel: Channel, meter: Meter, *, clock: Callable[[], float],
                 sleep: Callable[[float], None], report_every: float):
        self.channel, self.meter = channel, meter
        self.clock, self.sleep = clock, sleep
        self.report_every = report_every
        self.next_report = 0.0

    def report(self, force: bool = False) -> ReportReply | None:
        """Report if one is due (or `force`); the portal's reply, or None if none went out or got through."""
        if not force and self.clock() < self.next_report:
            return None
        self.next_report = self.clock() + self.report_every
        progress, files, events = self.meter.snapshot()
        reply = self.channel.report(progress)
        if reply is None:
            return None  # not delivered: the files and events go with the next report
        self.meter.delivered(progress, files, events)
        if reply.cancel_requested:
            raise Canceled()
        return reply

    def keep(self) -> None:
        self.channel.tick()
        if self.channel.stopping:
            raise Interrupted()
        self.report()

    def wait(self, until: Callable[[], bool] | None = None, *, every: float | Iterable[float] = POLL_SECONDS,
             within: float | None = None) -> bool:
        """Wait, keeping the lease every POLL_SECONDS (or more often). `until()` is asked at once and then
        `every` seconds after each turn's work is done (a number, or the intervals one after the other;
        0: at each turn, `until` then setting the pace itself). True once `until()` holds; False once
        `within` seconds have passed."""
        intervals = itertools.repeat(every) if isinstance(every, (int, float)) else iter(every)
        start = self.clock()
        give_up = None if within is None else start + within
        ask_at = start
        while True:
            asked = until is not None and self.clock() + _SLACK >= ask_at
            if asked and until():
                return True
            if give_up is not None and self.clock() + _SLACK >= give_up:
                return False
            self.keep()
            # The next ask is a pause after this turn's work, not a fixed beat from its start: the
            # throughput samples taken at rclone's looks then stay evenly spaced (the portal's stall
            # check averages their rates).
            now = self.clock()
            if asked:
                ask_at = now + next(intervals)
            pause = POLL_SECONDS
            if until is not None:
                pause = min(pause, ask_at - now)
            if give_up is not None:
                pause = min(pause, give_up - now)
            self.sleep(max(0.0, pause))


def rclone_call(lease: Lease, fn, *args, waits_on: type[RcError] = RcUnavailable, **kwargs):
    """An rc call that, while rclone is away (restarting), waits for it instead of failing the
    command; after RCLONE_COMEBACK_SECONDS it does fail (rclone_error)."""
    answer = []

    def answered() -> bool:
        try:
            answer.append(fn(*args, **kwargs))
        except waits_on:
            return False
        return True

    if not lease.wait(until=answered, every=RCLONE_RETRY_SECONDS, within=RCLONE_COMEBACK_SECONDS):
        raise TransferFailed(FailureReason.RCLONE_ERROR, f"rclone did not answer for {RCLONE_COMEBACK_SECONDS:.0f} s")
    return answer[0]
