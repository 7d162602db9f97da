"""The agent's loop: heartbeat, claim (long-poll), run, report, repeat.

`step()` is one turn of it, so a unit test drives the loop one turn at a time
with fake transports and a fake clock. One command runs at a time, in the
order the portal hands them out; side-channel tasks from heartbeat replies go
to their own worker thread and are answered while a command runs, because the
running command's lease keeper (agent/sender/lease.py) keeps calling `tick()`,
which heartbeats when one is due.

On SIGTERM/SIGINT `request_shutdown()` sets a flag: a running transfer stops
its rclone job, its last progress is reported with the command still
`running`, and the agent exits; restarted with the same state directory it
claims the command back and resumes it.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Callable

from agent import logs
from agent.loop.portal import Backoff, CommandGone, PortalClient, PortalError, PortalUnavailable, ReportReply, \
    TokenRejected
from agent.loop.sidechannel import SideChannel
from agent.sender import Outcome, TransferRunner
from dtn_protocol.failures import FailureReason
from dtn_protocol.states import CommandKind, CommandState

log = logging.getLogger(__name__)

DEFAULT_HEARTBEAT_SECONDS = 30.0
DEFAULT_CLAIM_HOLD_SECONDS = 30.0
# An idle sender sends a full heartbeat every this many beats; its claims stand for the others.
FULL_BEAT_EVERY = 10
# Tries for a final report once shutdown was asked: long enough for a portal hiccup, short of a kill.
FINAL_REPORT_TRIES_WHEN_STOPPING = 3


class ShutdownNow(BaseException):
    """Raised from the signal handler to leave a long-poll claim at once."""


class Controller:
    def __init__(self, *, portal: PortalClient, runner: TransferRunner | None, side: SideChannel | None = None,
                 describe: Callable[[], dict] = dict, after_beat: Callable[[dict], bool] | None = None,
                 heartbeat_marker: Callable[[float], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None):
        self.portal = portal
        self.runner = runner
        self.side = side
        self.describe = describe
        # E.g. a receiver syncing its grants; True means "report what changed now".
        self.after_beat = after_beat
        # Records each accepted heartbeat for the container health check (agent/health.py).
        self.heartbeat_marker = heartbeat_marker
        self.clock = clock
        self.sleep = sleep
        self.backoff = Backoff(rng=rng)
        self.heartbeat_seconds = DEFAULT_HEARTBEAT_SECONDS
        self.claim_hold_seconds = DEFAULT_CLAIM_HOLD_SECONDS
        self.next_beat = 0.0
        self.stopping = False
        # True only while a claim is held open: then a signal may break out of it.
        self.interruptible = False
        self.current_command: str | None = None
        self.stop_reason = ""
        # An idle agent's claims bring the side channel's tasks (docs/protocol.md).
        self._side_polls(False)
        # Beats an idle sender leaves to its claims before the next full heartbeat (the first is full).
        self.beats_left_to_claims = 0

    def request_shutdown(self, why: str = "shutdown") -> None:
        self.stopping = True
        self.stop_reason = why

    # --- heartbeats --------------------------------------------------------

    def beat(self) -> None:
        reply = self.portal.heartbeat(self.describe())
        if reply.get("container_id") and reply["container_id"] != logs.bound("container_id"):
            logs.bind(container_id=reply["container_id"])
            # Said once: from here every line carries the container's ID (one the side channel logged while
            # the first beat was on its way does not).
            log.info("the portal knows this agent as container %s (%s)", reply["container_id"], reply.get("role"))
        self.heartbeat_seconds = _seconds(reply.get("heartbeat_seconds"), self.heartbeat_seconds)
        self.claim_hold_seconds = _seconds(reply.get("claim_hold_seconds"), self.claim_hold_seconds, allow_zero=True)
        self.next_beat = self.clock() + self.heartbeat_seconds
        self._mark_alive()
        if self.side is not None:
            taken = self.side.submit(reply.get("tasks") or [])
            if taken:
                log.info("took %d side-channel task(s)", taken)
        if self.after_beat is not None and self.after_beat(reply):
            self.next_beat = self.clock()

    def _mark_alive(self) -> None:
        """The portal took a sign of life (a heartbeat, or an idle sender's claim): tell the health check."""
        if self.heartbeat_marker is not None:
            try:
                self.heartbeat_marker(self.heartbeat_seconds)
            except OSError as exc:
                log.warning("could not record the heartbeat for the health check: %s", exc)

    def beat_if_due(self) -> None:
        if self.clock() >= self.next_beat:
            self.beat()

    def _beat_or_fold(self) -> None:
        """An idle sender's claim is itself a sign of life (the portal records it): most beats are left
        to the claim, and a full heartbeat (status, clocks, tasks) goes out every FULL_BEAT_EVERY beats.
        With a receiver site to keep in step (after_beat), or while a command runs, every beat is full."""
        if self.clock() < self.next_beat:
            return
        if self.runner is not None and self.after_beat is None and 0 < self.beats_left_to_claims:
            self.beats_left_to_claims -= 1
            self.next_beat = self.clock() + self.heartbeat_seconds
            return
        self.beat()
        self.beats_left_to_claims = FULL_BEAT_EVERY - 1

    def tick(self) -> None:
        """Called often while a command runs: heartbeat when due; a portal hiccup waits for the next one."""
        self._check_side_channel()
        try:
            self.beat_if_due()
        except TokenRejected:
            raise
        except PortalError as exc:
            # The command goes on; its reports keep the lease. The next beat is tried a little later.
            self.next_beat = self.clock() + min(self.heartbeat_seconds, 5.0)
            log.warning("heartbeat failed: %s", exc)

    def _check_side_channel(self) -> None:
        if self.side is not None and self.side.token_rejected.is_set():
            raise TokenRejected("the portal refused the agent token (on a side-channel answer)")

    # --- the loop ------------------------------------------------------------

    def run(self) -> None:
        """Turn until shutdown is asked. TokenRejected propagates (the caller exits 3)."""
        try:
            while not self.stopping:
                self.step()
        except ShutdownNow:
            pass
        log.info("%s: leaving the loop", self.stop_reason)

    def step(self) -> None:
        if self.stopping:
            return
        self._check_side_channel()
        try:
            self._beat_or_fold()
            wait = max(0.0, min(self.claim_hold_seconds, self.next_beat - self.clock()))
            self.interruptible = True
            try:
                if self.stopping:
                    return
                if self.runner is None:
                    # A site that only receives has nothing to claim: it heartbeats.
                    self.sleep(wait)
                    return
                claimed = self.portal.claim(wait, tasks=self.side is not None)
            finally:
                self.interruptible = False
            self.backoff.reset()
            self._mark_alive()
        except PortalUnavailable as exc:
            self._pause(exc)
            return
        except TokenRejected:
            raise
        except PortalError as exc:
            # A 4xx that is not about the token: a bug on one side. Slow down and keep going.
            log.error("the portal refused a request: %s", exc)
            self._pause(exc)
            return
        if claimed.tasks:
            self.side.submit(claimed.tasks)
        if claimed.command is not None:
            self.execute(claimed.command)

    def _pause(self, exc: Exception) -> None:
        delay = self.backoff.next_delay()
        log.warning("portal unavailable (%s); next try in %.1f s", exc, delay)
        deadline = self.clock() + delay
        while not self.stopping and self.clock() < deadline:
            self.sleep(min(0.5, deadline - self.clock()))

    # --- one command ---------------------------------------------------------

    def execute(self, command: dict) -> None:
        command_id = str(command.get("command_id"))
        kind = command.get("kind")
        self.current_command = command_id
        payload = command.get("payload") if isinstance(command.get("payload"), dict) else {}
        logs.bind(transfer_id=payload.get("transfer_id"))
        log.info("running command %s (%s, attempt %s)", command_id, kind, command.get("attempt"))
        # No claim is held while the command runs: the side channel long-polls for its tasks itself.
        self._side_polls(True)
        try:
            if kind == CommandKind.TRANSFER:
                outcome = self.runner.run(command, _CommandChannel(self, command_id))
            else:
                outcome = Outcome(CommandState.FAILED, FailureReason.AGENT_ERROR,
                                  f"this agent does not run {kind!r} commands")
            self._finish(command_id, outcome)
        except CommandGone as gone:
            # The lease went elsewhere (reaper, another instance) or the command was removed: drop it.
            log.warning("dropped command %s: %s", command_id, gone)
        finally:
            self.current_command = None
            self._side_polls(False)
            logs.bind(transfer_id=None)

    def _side_polls(self, alone: bool) -> None:
        if self.side is not None and self.runner is not None:
            self.side.poll_alone(alone)

    def _finish(self, command_id: str, outcome: Outcome) -> None:
        if outcome.state is None:
            # Shutting down: the last progress, with the command still running, so a restart resumes it.
            try:
                self.portal.report(command_id, CommandState.RUNNING, progress=outcome.progress)
            except (PortalUnavailable, CommandGone) as exc:
                log.warning("could not report command %s before leaving: %s", command_id, exc)
            log.info("left command %s running, to resume on restart", command_id)
            return
        tries = 0
        while True:
            try:
                self.portal.report(command_id, outcome.state, progress=outcome.progress or None,
                                   reason=outcome.reason, message=outcome.message)
                self.backoff.reset()
                log.info("command %s %s%s", command_id, outcome.state,
                         f" ({outcome.reason}: {outcome.message})" if outcome.reason else "")
                return
            except (TokenRejected, CommandGone):
                raise
            except PortalUnavailable as exc:
                tries += 1
                if self.stopping and tries >= FINAL_REPORT_TRIES_WHEN_STOPPING:
                    log.warning("could not deliver the outcome of command %s; a restarted agent resumes it", command_id)
                    return
                delay = min(self.backoff.next_delay(), 5.0) if self.stopping else self.backoff.next_delay()
                log.warning("could not report the outcome of command %s (%s); again in %.1f s",
                            command_id, exc, delay)
                self.sleep(delay)
            except PortalError as exc:
                if outcome.progress:
                    # Perhaps the progress is what it refused: the outcome matters more than the details.
                    log.error("the portal refused the outcome of command %s (%s); sending it without progress",
                              command_id, exc)
                    outcome = Outcome(outcome.state, outcome.reason, outcome.message, {})
                    continue
                log.error("the portal refused the outcome of command %s: %s", command_id, exc)
                return


class _CommandChannel:
    """The runner's line to the portal for one command."""

    def __init__(self, controller: Controller, command_id: str):
        self.controller = controller
        self.command_id = command_id

    @property
    def stopping(self) -> bool:
        return self.controller.stopping

    def tick(self) -> None:
        self.controller.tick()

    def report(self, progress: dict) -> ReportReply | None:
        try:
            return self.controller.portal.report(self.command_id, CommandState.RUNNING, progress=progress)
        except PortalUnavailable as exc:
            # The transfer goes on; the lease is renewed by the next report that gets through.
            log.warning("progress report for %s failed: %s", self.command_id, exc)
            return None
        except (TokenRejected, CommandGone):
            raise
        except PortalError as exc:
            # Refused as malformed: a bug on one side. The transfer goes on; the log says why.
            log.error("the portal refused a progress report for %s: %s", self.command_id, exc)
            return None


def _seconds(value, default: float, allow_zero: bool = False) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and (value > 0 or (allow_zero and value == 0)):
        return float(value)
    return default
