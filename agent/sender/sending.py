"""Every source of an attempt through rclone: one job per source, or, for a folder
worth it, one per segment, the number of files at once adjusted between segments
from what each achieved (agent/tuning.py). A job rclone lost is started again."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from agent import names, tuning
from agent.rclone import RcError
from agent.sender.bigfiles import BigFiles
from agent.sender.errors import JobLost, TransferFailed
from agent.sender.job import RcloneJob, Tools
from agent.sender.ledger import FileEntry, SourcePlan
from agent.sender.spec import Spec
from dtn_protocol.failures import FailureReason
from dtn_protocol.options import Overwrite
from dtn_protocol.units import human_bytes

MAX_JOB_RESTARTS = 3


def resend_note(cutoff: int | None) -> str:
    """What a restart sends again, for the events that say so."""
    text = ("files already at the destination are not sent again; a file interrupted mid-way is sent again from"
            " its start")
    if cutoff is None:
        return text + " (rclone cannot resume a multipart upload)"
    return text + f" if under {human_bytes(cutoff)}; from that size only the parts the receiver does not hold are sent"


class Sending:
    def __init__(self, tools: Tools, spec: Spec, choice: tuning.Choice, *, ca_file: Path | None, tune: bool,
                 transfers: int, state_dir: Path, resume_cutoff: int | None = None):
        """`resume_cutoff`: files from this size are sent by the agent's own upload, which a restart resumes
        (bigfiles.py); None: every file through rclone."""
        self.t, self.spec, self.ca_file = tools, spec, ca_file
        self.tune, self.transfers, self.state_dir = tune, transfers, state_dir
        self.optimizer = tuning.Optimizer(choice, locked="transfers" in spec.tuning)
        self.groups: list[str] = []
        self.running: RcloneJob | None = None
        self.started: float | None = None
        # What each source's destination held before its first job (RcloneJob.start), by source index.
        self.listed: dict[int, dict | None] = {}
        self.big = BigFiles(tools, spec, ca_file=ca_file, state_dir=state_dir, cutoff=resume_cutoff)

    @property
    def choice(self) -> tuning.Choice:
        return self.optimizer.choice

    def source(self, plan: SourcePlan) -> None:
        if self.started is None:
            self.started = self.t.clock()
        if not plan.files:
            return  # nothing in it can be sent (its files' names were refused, or it is empty)
        # The large files first, each by the agent's own upload: they start with the transfer, as rclone's
        # largest-first order would have them.
        big = self.big.pick(plan)
        for entry in big.values():
            self.big.send(entry, self.choice)
        names_ = [name for name in plan.files if name not in big]
        if not names_:
            return
        groups = [None]
        if plan.resolved.is_dir and self.tune:
            groups = tuning.segments(names_, [plan.files[n].size for n in names_], self.choice.transfers)
            if len(groups) == 1:
                groups = [None]
        if len(groups) > 1:
            self.t.meter.event("segments", f"{plan.rel or '.'!r}: {len(names_)} files in {len(groups)} segments;"
                               " the concurrency is adjusted between them from what each achieved")
        if (plan.needs_list or big) and groups == [None]:
            # Not the whole folder: exactly the files the walk found (less those sent above), by list.
            groups = [names_]
        for number, group in enumerate(groups):
            if group is None:
                self._job(plan)
                continue
            done, before = self.t.meter.done, self.t.clock()
            bytes_before, errors_before = done["bytes"], done["errors"]
            self._job(plan, number, {name: plan.files[name] for name in group})
            result = tuning.SegmentResult(files=len(group), bytes=done["bytes"] - bytes_before,
                                          seconds=self.t.clock() - before, errors=done["errors"] - errors_before)
            if number + 1 < len(groups):
                old = self.choice.transfers
                choice, why = self.optimizer.next(result)
                self.t.meter.event("tuning", f"segment {number + 1} of {len(groups)} done ({result.files} files,"
                                   f" {human_bytes(result.bytes)} in {result.seconds:.1f} s); segment {number + 2}:"
                                   f" {old} -> {choice.transfers} files at once: {why}")

    def _job(self, plan: SourcePlan, segment: int | None = None, files: dict[str, FileEntry] | None = None) -> None:
        group = f"dtn-{self.spec.command_id}-{plan.index}" + (f"-{segment}" if segment is not None else "")
        if group not in self.groups:
            self.groups.append(group)
        restarts = 0
        while True:
            job = self.running = RcloneJob(self.t, plan, group, files)
            job.start(self.remote, self._config(), self._listing(group), self.listed)
            try:
                succeeded = job.watch()
            except JobLost as lost:
                self.running = None
                self.t.meter.bank(self.t.meter.live)
                restarts += 1
                self.t.meter.retries += 1
                if restarts > MAX_JOB_RESTARTS:
                    raise TransferFailed(FailureReason.RCLONE_ERROR,
                                         f"rclone lost the job {restarts} times ({lost}); giving up") from None
                self.t.meter.event("retry", f"rclone lost the job ({lost}); starting it again:"
                                   f" {resend_note(self.big.cutoff)}")
                continue
            self.running = None
            self.t.meter.bank(job.stats)
            if not succeeded:
                raise job.fail()
            job.settle()
            return

    def remote(self, path: str) -> dict:
        params = self.choice.remote_params() if self.tune else {}
        return self.t.destination.remote(path, self.ca_file, params)

    def bucket_remote(self, path: str) -> dict:
        """The remote for `bucket/path`: `path` from the bucket's root, not under the prefix."""
        params = self.choice.remote_params() if self.tune else {}
        return dataclasses.replace(self.t.destination, prefix="").remote(path, self.ca_file, params)

    def _config(self) -> dict:
        # NoUnicodeNormalization: an NFC and an NFD name are two files (agent/names.py).
        config = {"Transfers": self.transfers, "ConnectTimeout": "15s", **names.JOB_CONFIG}
        config.update(self.choice.job_config() if self.tune else {"Transfers": self.choice.transfers})
        if self.spec.verify_checksums:
            config["CheckSum"] = True  # decide what to send by size and hash, not size and time
        if self.spec.overwrite == Overwrite.SKIP_EXISTING:
            config["IgnoreExisting"] = True
        return config

    def _listing(self, group: str) -> Path:
        return self.state_dir / "segments" / f"{group}.txt"

    def cleanup(self) -> None:
        self.big.stop()
        if self.running is not None:
            self.running.stop()
        for group in self.groups:
            try:
                self.t.rc.stats_delete(group)
            except RcError:
                pass
            # A segment's file list is needed only by its job.
            self._listing(group).unlink(missing_ok=True)
