"""One rclone job: a source, or one segment of a folder, in a stats group of its own
(docs/agent.md, "Jobs" and "Watching"). Started; watched until it ends, its finished
files settled in the ledger as rclone lists them; stopped on a cancel or a shutdown.
rclone lists only its last 100 finished files: what slipped through is settled from
its counts when the job has succeeded."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from agent import names
from agent.failures import classify
from agent.rclone import JobNotFound, RcClient, RcError, RcUnavailable
from agent.sender.destination import Destination, explain
from agent.sender.errors import Canceled, Interrupted, JobLost, TransferFailed
from agent.sender.lease import POLL_SECONDS, Lease, rclone_call
from agent.sender.ledger import FileEntry, Ledger, SourcePlan
from agent.sender.meter import Meter
from dtn_protocol.failures import FailureReason
from dtn_protocol.states import FileOutcome

log = logging.getLogger(__name__)

# How a file rclone's successful job did not leave at the destination is described (and recognised).
NOT_THERE = ("missing at the receiver", "at the receiver with")
STOP_WAIT_SECONDS = 4.0
STOP_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Tools:
    """What every job of an attempt works with."""

    rc: RcClient
    lease: Lease
    meter: Meter
    ledger: Ledger
    destination: Destination
    settled: Callable[[FileEntry], None]  # a file is sent or found there: its checksum may be wanted
    clock: Callable[[], float]
    sleep: Callable[[float], None]


class RcloneJob:
    def __init__(self, tools: Tools, plan: SourcePlan, group: str, files: dict[str, FileEntry] | None = None):
        """`files`: a segment's files (by rclone's name); None for the whole source."""
        self.t, self.plan, self.group, self.files = tools, plan, group, files
        self.job = None
        self.seen: set[tuple] = set()
        self.sent_now = 0
        self.status: dict = {}
        self.stats: dict = {}
        self.remote: Callable[[str], dict] | None = None
        # What the destination held before the job ({name: size}; None if it could not be listed): a file
        # that was not there and is there after was sent, whatever rclone's list of finished files kept.
        self.before: dict[str, int] | None = None

    def start(self, remote: Callable[[str], dict], config: dict, listing: Path | None = None,
              listed: dict | None = None) -> None:
        """`remote(path)`: the destination's remote for a path under it; `listing`: where a segment's
        file list is written, for rclone to read; `listed`: what the destination held before the source's
        first job, by source, shared by its segments (each touches only its own files, so one listing
        before the first serves them all: a folder of many segments is not listed again for each)."""
        rc, lease, plan = self.t.rc, self.t.lease, self.plan
        self.remote = remote
        # A job of this command may still run in a sidecar rclone from before our restart.
        for call in (rc.stop_group, rc.stats_delete):
            try:
                call(self.group)
            except RcError:
                pass
        if not plan.resolved.is_dir:
            src = names.local_remote(plan.resolved.path.parent)
            self.job = rclone_call(lease, rc.copy_file, src, names.to_rclone(plan.resolved.path.name), remote(""),
                                   names.to_rclone(plan.rel), group=self.group, config=config)
            return
        src = names.local_remote(plan.resolved.path, follow_links=plan.follow_links)
        if listed is not None and plan.index in listed:
            self.before = listed[plan.index]
        else:
            self.before = self._destination()
            if listed is not None:
                listed[plan.index] = self.before
        filters = None
        if self.files is not None:
            # The segment's files, one per line, as rclone names them (no comments, no patterns): a line
            # break or another control character in a name is its picture (agent/names.py).
            listing.parent.mkdir(parents=True, exist_ok=True)
            listing.write_text("".join(f"{names.to_rclone(name)}\n" for name in self.files), encoding="utf-8")
            filters = {"FilesFromRaw": [str(listing)]}
        self.job = rclone_call(lease, rc.copy_dir, src, remote(plan.rel), group=self.group, config=config,
                               filters=filters)

    def watch(self) -> bool:
        """Until the job ends: whether it succeeded (its status and stats are kept). A cancel or a
        shutdown stops it first; JobLost when rclone forgot it."""
        try:
            self.t.lease.wait(until=self._look, every=POLL_SECONDS)
        except (Canceled, Interrupted):
            self.stop()
            self._last_look()
            raise
        self.job = None
        return bool(self.status.get("success"))

    def _look(self) -> bool:
        rc, job = self.t.rc, self.job
        try:
            self.sent_now += self.observe()
            status = rc.job_status(job.jobid)
            stats = rc.stats(self.group)
        except (RcUnavailable, JobNotFound) as exc:
            rclone_call(self.t.lease, rc.version, waits_on=RcError)
            raise JobLost(exc.message) from None
        if job.execute_id and status.get("executeId") not in (None, "", job.execute_id):
            raise JobLost("rclone restarted")
        self.t.meter.look(stats)
        if not status.get("finished"):
            return False
        # Files that finished after the listing above.
        self.sent_now += self.observe()
        self.status, self.stats = status, stats
        return True

    def _last_look(self) -> None:
        """Files that finished while the job was being stopped are the attempt's too:
        without this a restart finds them there and calls them skipped."""
        try:
            self.observe()
        except RcError as exc:
            log.warning("could not read what rclone finished before the stop: %s", exc.message)

    def stop(self) -> None:
        job, self.job = self.job, None
        if job is None:
            return
        rc = self.t.rc
        try:
            rc.job_stop(job.jobid)
            deadline = self.t.clock() + STOP_WAIT_SECONDS
            while self.t.clock() < deadline and not rc.job_status(job.jobid).get("finished"):
                self.t.sleep(STOP_POLL_SECONDS)
            self.t.meter.bank(rc.stats(self.group))
        except RcError as exc:
            log.warning("could not stop rclone job %s cleanly: %s", job.jobid, exc.message)

    def observe(self) -> int:
        """Take in rclone's list of finished files; the number newly sent."""
        ledger, sent = self.t.ledger, 0
        for item in sorted(self.t.rc.transferred(self.group), key=lambda t: t.get("completed_at") or ""):
            marker = (item.get("name"), item.get("what"), item.get("started_at"))
            if marker in self.seen:
                continue
            self.seen.add(marker)
            # rclone's names are in its own encoding (a newline is ␊): back to the names on disk.
            entry = self.plan.entry_for(names.from_rclone(item.get("name") or ""), int(item.get("size") or 0), ledger)
            if entry is None:
                continue
            error = item.get("error") or ""
            if item.get("checked"):
                entry.checked = True
                continue
            if error:
                if entry.outcome != FileOutcome.SENT:
                    ledger.settle(entry, FileOutcome.FAILED, error)
                continue
            if entry.outcome != FileOutcome.SENT:
                ledger.settle(entry, FileOutcome.SENT)
                sent += 1
                self.t.settled(entry)
        return sent

    def settle(self) -> None:
        """The job succeeded. A file rclone listed as sent or compared is settled already; the others
        (rclone lists only its last 100, and a file it ignored is listed nowhere) are looked for at the
        destination: one not there is failed as missing, never called sent. Those there are told apart
        by rclone's transfer count."""
        transfers = int(self.stats.get("transfers") or 0)
        files = self.files if self.files is not None else self.plan.files
        open_ = [e for e in files.values() if e.outcome in (None, FileOutcome.FAILED)]
        if self.plan.resolved.is_dir and any(not e.checked for e in open_):
            open_ = self._found_there(files, open_)
        if not self.plan.resolved.is_dir:
            sent_set = open_ if transfers > 0 else []
        elif self.before is not None:
            sent_set = self._sent_by_evidence(files, open_, transfers)
        else:
            unseen = [e for e in open_ if not e.checked]
            missing_sent = transfers - self.sent_now
            if missing_sent <= 0:
                sent_set = []
            elif missing_sent >= len(open_):
                sent_set = open_
            else:
                # Files rclone only compared were already there; the unseen ones hold the rest.
                sent_set = unseen
                if missing_sent != len(unseen):
                    self.t.meter.event("warning", f"{len(open_)} files finished faster than the agent could list"
                                       f" them; {missing_sent} of them were sent and the others were already there,"
                                       " but which is which is inferred")
        chosen = {id(e) for e in sent_set}
        for e in open_:
            self.t.ledger.settle(e, FileOutcome.SENT if id(e) in chosen else FileOutcome.SKIPPED)
            self.t.settled(e)

    def _sent_by_evidence(self, files: dict[str, FileEntry], open_: list[FileEntry], transfers: int) -> list:
        """Of the files rclone did not list: those not at the destination before the job were sent; of
        those there before, rclone's transfer count says whether it sent any again (one whose size
        changed, when the count says how many)."""
        name_of = {id(e): name for name, e in files.items()}
        unseen = [e for e in open_ if not e.checked]
        new = [e for e in unseen if name_of[id(e)] not in self.before]
        old = [e for e in unseen if name_of[id(e)] in self.before]
        again = transfers - self.sent_now - len(new)
        if again <= 0:
            return new
        changed = [e for e in old if self.before[name_of[id(e)]] != e.size]
        if again >= len(old):
            return new + old
        if again != len(changed):
            self.t.meter.event("warning", f"rclone sent {again} of {len(old)} files that were already at the"
                               " destination again, faster than the agent could list them: which ones is inferred")
        return new + changed

    def _destination(self) -> dict[str, int] | None:
        """The files under this job's destination folder: {name on disk: size}; None if it cannot be listed."""
        try:
            listed = self.t.rc.list_files(self.remote(self.plan.rel))
        except RcError as exc:
            self.t.meter.event("warning", f"could not list the destination ({exc.message})")
            return None
        return {names.from_rclone(item.get("Path") or ""): item.get("Size") for item in listed}

    def _found_there(self, files: dict[str, FileEntry], open_: list[FileEntry]) -> list[FileEntry]:
        """The open files found at the destination with their size; the others are failed as missing."""
        unseen = {id(e) for e in open_ if not e.checked}
        there = self._destination()
        if there is None:
            return open_  # the outcome of the files rclone did not list is inferred from its counts
        kept = []
        for name, entry in files.items():
            if entry not in open_:
                continue
            size = there.get(name)
            if id(entry) not in unseen or size == entry.size:
                kept.append(entry)
            elif size is None:
                self.t.ledger.settle(entry, FileOutcome.FAILED, "missing at the receiver: rclone's copy ended without"
                                     " error but did not send this file")
            else:
                self.t.ledger.settle(entry, FileOutcome.FAILED, f"at the receiver with {size} bytes, not {entry.size}")
        return kept

    def fail(self) -> TransferFailed:
        """The job failed: why, by the closed list, naming the files."""
        status, stats = self.status, self.stats
        failed = [e for e in self.plan.files.values() if e.outcome == FileOutcome.FAILED]
        texts = [status.get("error") or "", stats.get("lastError") or ""] + [e.error for e in failed]
        reasons = [classify(t) for t in texts if t]
        reason = next((r for r in reasons if r != FailureReason.RCLONE_ERROR), FailureReason.RCLONE_ERROR)
        detail = status.get("error") or stats.get("lastError") or "rclone reported a failure"
        if reason == FailureReason.CHECKSUM_MISMATCH:
            bad = [e.key for e in failed if classify(e.error) == FailureReason.CHECKSUM_MISMATCH]
            detail = "the receiver's copy differs from the source for: " + ", ".join(bad[:50])
        message = explain(reason, self.t.destination, detail)
        if failed and reason != FailureReason.CHECKSUM_MISMATCH:
            message += f" ({len(failed)} files failed, e.g. {failed[0].key})"
        return TransferFailed(reason, message)
