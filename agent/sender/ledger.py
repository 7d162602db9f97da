"""The files of one command: the sources resolved inside the send folder and walked
as rclone will see them, and what became of each file, with running totals so that
a report costs the same for ten files or a million."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from agent import paths
from agent.sender.errors import TransferFailed
from dtn_protocol.states import FileOutcome


@dataclass(eq=False)
class FileEntry:
    key: str  # path relative to the send folder, as the portal names it
    path: Path  # where to read it for hashing
    size: int
    outcome: str | None = None
    error: str = ""
    checked: bool = False  # rclone compared it with the destination (it may still be sent)
    sha256: str = ""
    hash_wanted: bool = False
    hash_error: str = ""
    reported: bool = False

    @property
    def hash_pending(self) -> bool:
        return self.hash_wanted and not (self.sha256 or self.hash_error)

    def result(self) -> dict:
        # A failed file's checksum would vouch for bytes that did not land.
        sha = self.sha256 if self.outcome != FileOutcome.FAILED else ""
        return {"path": self.key, "size": self.size, "sha256": sha, "outcome": self.outcome, "error": self.error}


@dataclass
class SourcePlan:
    index: int
    resolved: paths.Resolved
    files: dict[str, FileEntry]  # rclone's name (relative to the job's source) -> entry

    @property
    def rel(self) -> str:
        return self.resolved.rel

    def entry_for(self, name: str, size: int, ledger: "Ledger") -> FileEntry | None:
        """The entry of a file rclone names; one that appeared in a folder after the listing is added
        (rclone sent it, so it is reported)."""
        entry = self.files.get(name)
        if entry is None and self.resolved.is_dir:
            key = f"{self.rel}/{name}" if self.rel else name
            entry = self.files[name] = ledger.add(FileEntry(key, self.resolved.path / name, size))
        return entry


class Ledger:
    """Every file of the command and what became of it."""

    def __init__(self):
        self.count = 0
        self.total_bytes = 0
        self.done_bytes = 0
        self.counts = dict.fromkeys(FileOutcome, 0)
        self.unreported: dict[int, FileEntry] = {}

    def add(self, entry: FileEntry) -> FileEntry:
        self.count += 1
        self.total_bytes += entry.size
        return entry

    def settle(self, entry: FileEntry, outcome: str, error: str = "") -> None:
        if entry.outcome:
            self.counts[entry.outcome] -= 1
            if entry.outcome != FileOutcome.FAILED:
                self.done_bytes -= entry.size
        entry.outcome, entry.error = outcome, error
        self.counts[outcome] += 1
        if outcome != FileOutcome.FAILED:
            self.done_bytes += entry.size
        # A changed outcome is reported again; the portal keeps the last word per path.
        entry.reported = False
        self.unreported[id(entry)] = entry

    def ready(self, limit: int) -> list[FileEntry]:
        """Unreported files whose checksum, if one is wanted, is known."""
        ready = []
        for entry in list(self.unreported.values()):
            if len(ready) >= limit:
                break
            if entry.hash_pending and entry.outcome != FileOutcome.FAILED:
                continue
            if entry.hash_error and entry.outcome != FileOutcome.FAILED:
                self.settle(entry, FileOutcome.FAILED, entry.hash_error)
            ready.append(entry)
        return ready

    def delivered(self, entries: list[FileEntry]) -> None:
        for entry in entries:
            entry.reported = True
            self.unreported.pop(id(entry), None)


def entries(plans: list[SourcePlan]):
    for plan in plans:
        yield from plan.files.values()


def list_sources(send_dir: Path, sources, ledger: Ledger) -> tuple[list[SourcePlan], list[str], int]:
    """The sources resolved inside the send folder and walked: (their plans, a warning for each source
    inside another, the symbolic links left out). A source refused fails the command by its reason."""
    resolved = []
    for raw in sources:
        try:
            resolved.append(paths.resolve(send_dir, raw))
        except paths.PathRefused as refused:
            raise TransferFailed(refused.reason, refused.message) from None
    kept, warnings = [], []
    for i, item in enumerate(resolved):
        # A source inside another (or named twice) is sent once, with the outer one.
        outer = next((k for j, k in enumerate(resolved)
                      if j != i and _inside(item, k) and (k.rel != item.rel or j < i)), None)
        if outer is None:
            kept.append(item)
        else:
            warnings.append(f"{item.rel or '.'!r} is inside {outer.rel or '.'!r}: it is sent once")
    plans, links = [], 0
    for index, item in enumerate(kept):
        plan, skipped = walk(index, item, ledger)
        plans.append(plan)
        links += skipped
    return plans, warnings, links


def walk(index: int, resolved: paths.Resolved, ledger: Ledger) -> tuple[SourcePlan, int]:
    """The regular files under a source, as rclone will see them. Symbolic links
    inside a folder are not followed (rclone's default, and a link may lead out of
    the send folder); the count of skipped links is returned."""
    files: dict[str, FileEntry] = {}
    if not resolved.is_dir:
        files[resolved.path.name] = ledger.add(FileEntry(resolved.rel, resolved.path, resolved.path.stat().st_size))
        return SourcePlan(index, resolved, files), 0
    links = 0
    root = resolved.path
    for directory, dirnames, filenames in os.walk(root):
        here = Path(directory)
        for name in list(dirnames):
            if (here / name).is_symlink():
                links += 1
                dirnames.remove(name)
        for name in filenames:
            full = here / name
            try:
                info = full.lstat()
            except OSError:
                continue
            if stat.S_ISLNK(info.st_mode):
                links += 1
                continue
            if not stat.S_ISREG(info.st_mode):
                continue
            inner = full.relative_to(root).as_posix()
            key = f"{resolved.rel}/{inner}" if resolved.rel else inner
            files[inner] = ledger.add(FileEntry(key, full, info.st_size))
    return SourcePlan(index, resolved, files), links


def _inside(item: paths.Resolved, other: paths.Resolved) -> bool:
    """`item` is `other` or lies under it (by the names the command used)."""
    return item.rel == other.rel or other.rel == "" or item.rel.startswith(other.rel + "/")
