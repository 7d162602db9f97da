"""One run of one `transfer` command by this agent process, step by step (docs/agent.md,
"Running a transfer"). Each step is a module of its own; what ends the run early is an
exception (errors.py), turned here into the command's outcome."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from agent import logs
from agent.sender import collisions
from agent.loop.portal import PortalError
from agent.rclone import RcError
from agent.sender.destination import check_destination, pin_certificate
from agent.sender.errors import Canceled, Interrupted, TransferFailed
from agent.sender.hasher import Hasher, await_checksums
from agent.sender.job import Tools
from agent.sender.lease import Channel, Lease, rclone_call
from agent.sender.ledger import FileEntry, Ledger, entries, list_sources
from agent.sender.meter import Meter
from agent.sender.outcomes import fail_if_missing, fail_if_refused, mark_stopped, say_each
from agent.sender.preflight import Preflight
from agent.sender.sending import Sending, resend_note
from agent.sender.spec import Spec, parse_command
from agent.sender.verdict import await_verdict
from dtn_protocol.failures import FailureReason
from dtn_protocol.options import Overwrite
from dtn_protocol.states import CommandState, FileOutcome
from dtn_protocol.units import human_bytes, human_speed

log = logging.getLogger(__name__)

@dataclass
class Outcome:
    state: CommandState | None  # None: leave the command leased; this agent (restarted) resumes it
    reason: str = ""
    message: str = ""
    progress: dict = field(default_factory=dict)


class Attempt:
    def __init__(self, runner, command: dict, channel: Channel):
        """`runner`: the TransferRunner, with the agent's settings and tools."""
        self.r, self.command = runner, command
        self.ledger = Ledger()
        self.meter = Meter(self.ledger, clock=runner.clock, now=runner.now, command_id=command.get("command_id"),
                           attempt=command.get("attempt"))
        self.lease = Lease(channel, self.meter, clock=runner.clock, sleep=runner.sleep,
                           report_every=runner.progress_seconds)
        self.spec: Spec | None = None
        self.hasher: Hasher | None = None
        self.sending: Sending | None = None
        self.refused: list[FileEntry] = []
        self.plans: list = []

    def run(self) -> Outcome:
        try:
            try:
                return self._steps()
            finally:
                self._cleanup()
        except TransferFailed as failure:
            self.meter.event("fail", f"{failure.reason}: {failure.message}")
            return self._outcome(CommandState.FAILED, failure.reason, failure.message)
        except Canceled:
            mark_stopped(self.plans, self.ledger, self.meter)
            self.meter.event("stop", "stopped at the portal's request; a restart sends only what is missing or"
                             " different")
            return self._outcome(CommandState.CANCELED, message="stopped by a person")
        except Interrupted:
            self.meter.event("interrupted", "the agent is shutting down; the command resumes when it starts again: "
                             + resend_note(self.r.resume_cutoff))
            return self._outcome(None)
        except RcError as exc:
            self.meter.event("fail", f"rclone_error: {exc.message}")
            return self._outcome(CommandState.FAILED, FailureReason.RCLONE_ERROR, f"rclone refused {exc}")
        except PortalError:
            raise  # the controller's business: a lost lease, a revoked token
        except Exception as exc:
            # A bug here must fail this command, not end the agent and the queue behind it.
            log.exception("command %s: the agent failed", self.command.get("command_id"))
            return self._outcome(CommandState.FAILED, FailureReason.AGENT_ERROR,
                                 f"the agent failed: {type(exc).__name__}: {exc}")

    def _steps(self) -> Outcome:
        r = self.r
        self.spec = spec = parse_command(self.command)
        logs.redact(spec.destination.secret_key)
        check_destination(spec.destination, r.endpoint_rule)
        self.meter.attempt, self.meter.base_progress = spec.attempt, spec.base_progress
        plans = self.plans = self._list()
        collisions.refuse_within(plans, spec.destination)
        self.lease.report(force=True)
        ca_file = pin_certificate(r.state_dir, spec.destination)
        choice = Preflight(r, spec, self.ledger, plans, self.meter, self.lease).run(ca_file)
        self._set_bandwidth()
        tools = Tools(r.rc, self.lease, self.meter, self.ledger, spec.destination, self._settled, r.clock, r.sleep)
        self.sending = Sending(tools, spec, choice, ca_file=ca_file, tune=r.tune, transfers=r.transfers,
                               state_dir=r.state_dir, resume_cutoff=r.resume_cutoff)
        # Against what the receiver holds already, too: nothing is sent if one path would land on another's file.
        collisions.refuse_with_destination(
            plans, spec.destination,
            lambda path: rclone_call(self.lease, r.rc.list_files, self.sending.bucket_remote(path)),
            lambda path: rclone_call(self.lease, r.rc.list_folders, self.sending.bucket_remote(path)))
        for plan in plans:
            self.sending.source(plan)
        await_checksums(list(entries(plans)), self.lease)
        fail_if_missing(plans)
        self._against_prediction()
        if spec.verify_checksums:
            await_verdict(self.meter, self.lease, r.progress_seconds)
        fail_if_refused(self.refused)
        counts = self.ledger.counts
        self.meter.event("complete", f"{self.ledger.count} files at the destination; {counts[FileOutcome.SENT]}"
                         f" sent by this run, {counts[FileOutcome.SKIPPED]} were already there")
        return self._outcome(CommandState.SUCCEEDED)

    def _list(self):
        spec, meter = self.spec, self.meter
        listing = list_sources(self.r.send_dir, spec.sources, self.ledger, spec.destination.name_max,
                               spec.destination.key_room)
        plans = listing.plans
        for warning in listing.warnings:
            meter.event("warning", warning)
        if spec.verify_checksums:
            self.hasher = Hasher()
            if spec.overwrite == Overwrite.UPDATE_CHANGED:
                # Every file ends up sent or identical at the destination: all get a checksum, start now.
                for entry in entries(plans):
                    self.hasher.add(entry)
        if spec.resumed:
            meter.event("resume", f"attempt {spec.attempt} resumes the transfer: {resend_note(self.r.resume_cutoff)}")
        meter.event("start", f"{self.ledger.count} files, {self.ledger.total_bytes} bytes to"
                    f" {spec.destination.where()} (overwrite: {spec.overwrite}, checksums:"
                    f" {'on' if spec.verify_checksums else 'off'}, bandwidth limit: {spec.bandwidth_limit or 'none'})")
        say_each(meter, "link_followed", [f"{key!r} is a symbolic link inside the send folder: sent as the file(s) it"
                                          " points to, under its own name" for key in listing.followed])
        say_each(meter, "not_sent", [f"{key!r} {why}" for key, why in listing.left_out])
        say_each(meter, "empty_folder", [f"{key!r} holds no file: not carried (the receiver stores files, not"
                                         " folders)" for key in listing.empty])
        say_each(meter, "name_refused", [f"{e.key!r} {e.error}" for e in listing.refused])
        self.refused = listing.refused
        return plans

    def _settled(self, entry: FileEntry) -> None:
        # Under skip_existing a skipped file's destination copy is not ours: no checksum to compare.
        if entry.outcome == FileOutcome.SKIPPED and self.spec.overwrite == Overwrite.SKIP_EXISTING:
            return
        if self.hasher is not None:
            self.hasher.add(entry)

    def _set_bandwidth(self) -> None:
        # Process-wide in rclone; the agent runs one command at a time, and every
        # command sets it (or "off"), so a limit never outlives its command.
        rate = self.spec.bandwidth_limit or "off"
        try:
            rclone_call(self.lease, self.r.rc.bwlimit, rate)
        except RcError as exc:
            raise TransferFailed(FailureReason.RCLONE_ERROR,
                                 f"rclone refused the bandwidth limit {rate!r}: {exc.message}") from None

    def _against_prediction(self) -> None:
        sending = self.sending
        choice = sending.choice
        if sending.started is None or not choice.predicted_seconds:
            return
        took = max(self.r.clock() - sending.started, 1e-3)
        sent = self.meter.done["bytes"]
        self.meter.event("performance", f"sent {human_bytes(sent)} in {took:.1f} s ({human_speed(sent / took)});"
                         f" the network check predicted {choice.predicted_seconds:.1f} s"
                         f" ({human_speed(choice.predicted_bytes_per_s or 0)}) for all"
                         f" {human_bytes(self.ledger.total_bytes)}")

    def _outcome(self, state, reason="", message="") -> Outcome:
        progress, _, _ = self.meter.snapshot(final=state == CommandState.SUCCEEDED)
        return Outcome(state, str(reason), message, progress)

    def _cleanup(self) -> None:
        if self.sending is not None:
            self.sending.cleanup()
        if self.hasher is not None:
            self.hasher.stop()
        if self.spec is not None and self.spec.bandwidth_limit:
            try:
                self.r.rc.bwlimit("off")
            except RcError:
                pass

