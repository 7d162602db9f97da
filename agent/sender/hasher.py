"""The SHA-256 of each file sent, computed here and reported, so the portal can compare
it with what the receiver holds (docs/agent.md, "Checksums")."""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from pathlib import Path

from agent.sender.errors import TransferFailed
from agent.sender.lease import Lease
from agent.sender.ledger import FileEntry
from dtn_protocol.failures import FailureReason
from dtn_protocol.states import FileOutcome

# How often the last checksums are looked for once every job has ended.
LAST_HASHES_POLL_SECONDS = 0.05


def sha256_of(path: Path) -> bytes:
    """The file's SHA-256, as the 32 bytes a ledger entry keeps (FileEntry.sha256 gives it in hex)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").digest()


class Hasher:
    """One thread computing SHA-256s in the order files are handed in. Files are
    handed in as soon as they are planned, so the checksum of a big file is
    ready about when rclone has sent it (hashlib works outside the GIL)."""

    def __init__(self):
        self._queue: deque[FileEntry] = deque()
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._work, name="sha256", daemon=True)
        self._thread.start()

    def add(self, entry: FileEntry) -> None:
        if entry.hash_wanted:
            return
        entry.hash_wanted = True
        with self._wake:
            self._queue.append(entry)
            self._wake.notify()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._stopped:
                    self._wake.wait()
                if self._stopped:
                    return
                entry = self._queue.popleft()
            try:
                entry.digest = sha256_of(entry.path)
            except OSError as exc:
                entry.hash_error = f"could not read it to compute its SHA-256: {exc.strerror}"


def await_checksums(entries: list[FileEntry], lease: Lease) -> None:
    """Hashing runs beside the transfer: the last files' checksums may still be coming when the
    last job ends. A file that could not be read fails the command."""
    pending = deque(e for e in entries if e.outcome in (FileOutcome.SENT, FileOutcome.SKIPPED) and e.hash_pending)

    def all_known() -> bool:
        while pending and not pending[0].hash_pending:
            pending.popleft()
        return not pending

    lease.wait(until=all_known, every=LAST_HASHES_POLL_SECONDS)
    unread = next((e for e in entries if e.hash_error), None)
    if unread is not None:
        raise TransferFailed(FailureReason.AGENT_ERROR, f"{unread.key}: {unread.hash_error}")
