"""The files of an attempt at or above the resume cutoff, each sent by the agent's own multipart upload
(multipart.py) instead of rclone, so that a restart sends only the parts that did not land. Which file is
sent, skipped or failed follows the transfer's overwrite mode, as rclone decides it for the others."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from agent import names
from agent.tuning import Choice
from agent.failures import classify
from agent.sender.errors import Canceled, Interrupted, TransferFailed
from agent.sender.job import Tools
from agent.sender.lease import POLL_SECONDS
from agent.sender.ledger import FileEntry, SourcePlan
from agent.netcheck.s3 import error_code
from agent.sender.multipart import Client, Layout, Upload, UploadFailed, UploadState
from agent.sender.spec import Spec
from dtn_protocol.failures import FailureReason
from dtn_protocol.options import Overwrite
from dtn_protocol.states import FileOutcome
from dtn_protocol.units import MiB, human_bytes

DEFAULT_CUTOFF = 256 * MiB
_MD5 = re.compile(r"^[0-9a-f]{32}$")


class BigFiles:
    def __init__(self, tools: Tools, spec: Spec, *, ca_file: Path | None, state_dir: Path, cutoff: int | None):
        """`cutoff`: files from this size go through the agent's own upload (None: none do)."""
        self.t, self.spec, self.ca_file, self.state_dir = tools, spec, ca_file, state_dir
        self.cutoff = cutoff
        self.running: Upload | None = None

    def pick(self, plan: SourcePlan) -> dict[str, FileEntry]:
        """The source's files this path sends: large, and named as S3 keys exactly as on disk (a name rclone
        must encode stays with rclone)."""
        if self.cutoff is None:
            return {}
        return {name: entry for name, entry in plan.files.items()
                if entry.size >= self.cutoff and names.to_rclone(entry.key) == entry.key}

    def send(self, entry: FileEntry, choice: Choice) -> None:
        """One file, its parts as large and as many at once as the tuning's `choice` allows."""
        d = self.t.destination
        # Where rclone would put it: the source's path under the send folder is the entry's key.
        key = f"{d.prefix}/{entry.key}" if d.prefix else entry.key
        rate = self.spec.bandwidth_bytes
        layout = Layout.choose(entry.size, choice.chunk_size, choice.upload_concurrency, rate)
        client = Client(d.endpoint, d.bucket, d.access_key, d.secret_key, tls=d.tls, ca_file=self.ca_file,
                        pool_size=layout.parallel + 2)
        try:
            stat = entry.path.stat()
            there = client.head(key)
            if there is not None and self._keep(there, entry, stat.st_mtime):
                self.t.ledger.settle(entry, FileOutcome.SKIPPED)
                self.t.meter.done["checks"] += 1
                self.t.settled(entry)
                return
        except Exception as exc:
            client.close()
            raise self._failed(entry, exc) from None
        state = UploadState(self.state_dir, f"{d.endpoint}\n{d.bucket}\n{d.access_key}\n{key}")
        upload = self.running = Upload(client, state, path=entry.path, key=key, size=entry.size,
                                       mtime=stat.st_mtime, layout=layout, rate=rate,
                                       command_id=str(self.spec.command_id))
        upload.start()
        told = False

        def look() -> bool:
            nonlocal told
            sent, at = upload.progress()
            self.t.meter.look({"bytes": sent, "transferring": [{"name": entry.key, "bytes": at, "size": entry.size}]})
            if not told and (upload.resumed or upload.restarted_from_zero):
                told = True
                self._say_resumed(entry, upload)
            return upload.finished()

        try:
            self.t.lease.wait(until=look, every=POLL_SECONDS)
        except (Canceled, Interrupted):
            upload.stop()
            self._bank(upload)
            self.t.meter.event("kept", f"{entry.key!r}: {human_bytes(upload.held)} of {human_bytes(entry.size)} held"
                               " by the receiver as parts of an upload (parts cut short by the stop are not); a"
                               " restart sends only the rest")
            raise
        finally:
            self.running = None
        self._bank(upload)
        if not told and (upload.resumed or upload.restarted_from_zero):
            self._say_resumed(entry, upload)
        if not upload.done:
            raise self._failed(entry, upload.error or UploadFailed("the upload ended without a word"))
        self.t.ledger.settle(entry, FileOutcome.SENT)
        self.t.settled(entry)

    def _say_resumed(self, entry: FileEntry, upload: Upload) -> None:
        self.t.meter.resumed_bytes += upload.resumed_bytes
        if upload.restarted_from_zero:
            self.t.meter.event("resume", f"{entry.key!r}: {upload.restarted_from_zero}")
        else:
            self.t.meter.event("resume", f"{entry.key!r}: the receiver holds {human_bytes(upload.held_at_start)} of"
                               f" {human_bytes(entry.size)} from before; only the other"
                               f" {human_bytes(entry.size - upload.held_at_start)} are sent")

    def _bank(self, upload: Upload) -> None:
        sent, _ = upload.progress()
        self.t.meter.bank({"bytes": sent, "transfers": 1 if upload.done else 0})
        self.t.meter.retries += upload.retries

    def _keep(self, there, entry: FileEntry, mtime: float) -> bool:
        """Whether the destination's object stands as it is, as rclone's copy would decide it."""
        if self.spec.overwrite == Overwrite.SKIP_EXISTING:
            return True
        if there.size != entry.size:
            return False
        theirs = _mtime(there)
        if not self.spec.verify_checksums and theirs is not None and abs(theirs - mtime) < 1e-3:
            return True
        etag = (there.etag or "").strip('"').lower()
        if _MD5.match(etag):
            return _md5(entry.path) == etag
        # No hash to compare: with checksums on rclone compares the size alone; otherwise the times.
        return self.spec.verify_checksums or (theirs is not None and abs(theirs - mtime) < 1e-3)

    def _failed(self, entry: FileEntry, exc: BaseException) -> TransferFailed:
        code = error_code(exc)
        text = f"{code}: {exc}" if code and code not in str(exc)[:60] else str(exc)
        reason = classify(text, FailureReason.RECEIVER_UNREACHABLE)
        self.t.ledger.settle(entry, FileOutcome.FAILED, text[:500])
        return TransferFailed(reason, f"{entry.key!r} could not be sent to {self.t.destination.where()}: {text[:500]}"
                              " (what landed is kept; a restart sends only the rest)")

    def stop(self) -> None:
        if self.running is not None:
            self.running.stop()


def _mtime(there) -> float | None:
    value = (there.metadata or {}).get("x-amz-meta-mtime") or (there.metadata or {}).get("X-Amz-Meta-Mtime")
    try:
        return float(value) if value else (there.last_modified.timestamp() if there.last_modified else None)
    except (TypeError, ValueError):
        return None


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while chunk := handle.read(4 * MiB):
            digest.update(chunk)
    return digest.hexdigest()
