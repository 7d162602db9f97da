"""The files of one command: the sources resolved inside the send folder and walked
as rclone will see them, and what became of each file, with running totals so that
a report costs the same for ten files or a million."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from agent import names, paths
from agent.sender.errors import TransferFailed
from dtn_protocol.states import FileOutcome


@dataclass(frozen=True, slots=True)
class Place:
    """Where a source's files are read and what their keys start with: one for all of them."""

    root: str  # the folder they are read from (a file's parent, for a source that is a file)
    prefix: str  # the source's path relative to the send folder and "/", or "" for the send folder itself


@dataclass(eq=False, slots=True)
class FileEntry:
    """One file, kept small: a million of them are held at once. No __dict__, no Path, no key string of
    its own (its source's prefix and its name, which is the plan's own key string), the checksum as 32
    bytes."""

    place: Place
    name: str  # under the source, as rclone names it
    size: int
    outcome: str | None = None
    error: str = ""
    checked: bool = False  # rclone compared it with the destination (it may still be sent)
    digest: bytes = b""  # its SHA-256, once computed
    hash_wanted: bool = False
    hash_error: str = ""
    reported: bool = False
    own_key: str | None = None  # its key, when not the prefix and the name (a source that is a file, a refused name)
    real: str | None = None  # where it is read, when not at the root under its name (a link followed to a file)

    @property
    def key(self) -> str:
        """Its path relative to the send folder, as the portal names it."""
        return self.own_key if self.own_key is not None else self.place.prefix + self.name

    @key.setter
    def key(self, value: str) -> None:
        self.own_key = value

    @property
    def path(self) -> Path:
        """Where to read it for hashing."""
        return Path(self.real) if self.real is not None else Path(self.place.root, self.name)

    @property
    def sha256(self) -> str:
        return self.digest.hex()

    @sha256.setter
    def sha256(self, value: str) -> None:
        self.digest = bytes.fromhex(value)

    @property
    def hash_pending(self) -> bool:
        return self.hash_wanted and not (self.digest or self.hash_error)

    def result(self) -> dict:
        # A failed file's checksum would vouch for bytes that did not land.
        sha = self.digest.hex() if self.outcome != FileOutcome.FAILED else ""
        return {"path": self.key, "size": self.size, "sha256": sha, "outcome": self.outcome, "error": self.error}


@dataclass
class SourcePlan:
    index: int
    resolved: paths.Resolved
    files: dict[str, FileEntry]  # rclone's name (relative to the job's source) -> entry
    # Files whose names cannot be carried exactly: failed at the listing, never given to rclone.
    refused: list[FileEntry] = field(default_factory=list)
    # A link inside the folder is followed: rclone must then be told exactly which files to send.
    follow_links: bool = False

    @property
    def needs_list(self) -> bool:
        """rclone cannot be given the whole folder: some of what is in it must not be sent, or a
        link in it is followed (rclone's copy_links would follow those leading out too)."""
        return self.resolved.is_dir and (bool(self.refused) or self.follow_links)

    @property
    def rel(self) -> str:
        return self.resolved.rel

    @cached_property
    def place(self) -> Place:
        """Where its files are read and what their keys start with, one for them all."""
        path, rel = self.resolved.path, self.rel
        return Place(str(path if self.resolved.is_dir else path.parent), f"{rel}/" if rel else "")

    def entry_for(self, name: str, size: int, ledger: "Ledger") -> FileEntry | None:
        """The entry of a file rclone names; one that appeared in a folder after the listing is added
        (rclone sent it, so it is reported)."""
        entry = self.files.get(name)
        if entry is None and self.resolved.is_dir:
            entry = self.files[name] = ledger.add(FileEntry(self.place, name, size))
        return entry


class Ledger:
    """Every file of the command and what became of it."""

    def __init__(self):
        self.count = 0
        self.total_bytes = 0
        self.done_bytes = 0
        self.counts = dict.fromkeys(FileOutcome, 0)
        # Settled, not yet in a report that got through (keyed by the entry itself: no id() per file).
        self.unreported: dict[FileEntry, FileEntry] = {}

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
        self.unreported[entry] = entry

    def ready(self, limit: int) -> list[FileEntry]:
        """Unreported files whose checksum, if one is wanted, is known."""
        ready = []
        # Not a copy of a million pending files per report: settle() below only sets a key already here, so
        # the map does not change size while it is walked.
        for entry in self.unreported.values():
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
            self.unreported.pop(entry, None)
        if not self.unreported:
            self.unreported = {}  # a dict emptied keeps its table: a million files' worth, until replaced


def entries(plans: list[SourcePlan]):
    for plan in plans:
        yield from plan.files.values()


@dataclass
class Listing:
    """What the walk of the sources found besides the files to send: each said in the event log."""

    plans: list[SourcePlan]
    warnings: list[str] = field(default_factory=list)  # a source inside another
    followed: list[str] = field(default_factory=list)  # links inside the send folder, sent as what they point to
    left_out: list[tuple[str, str]] = field(default_factory=list)  # (link or special file, why it is not sent)
    empty: list[str] = field(default_factory=list)  # folders with no file under them: S3 holds no folders
    refused: list[FileEntry] = field(default_factory=list)  # names that cannot land exactly (failed, not sent)


def list_sources(send_dir: Path, sources, ledger: Ledger, name_max: int = names.NAME_MAX,
                 key_room: int | None = None) -> Listing:
    """The sources resolved inside the send folder and walked. A source refused fails the command by
    its reason; a file whose name cannot be carried exactly is refused on its own (names.refusal)."""
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
    listing = Listing([], warnings)
    walker = _Walker(Path(send_dir).resolve(), ledger, listing, name_max, key_room)
    for index, item in enumerate(kept):
        listing.plans.append(walker.source(index, item))
    return listing


class _Walker:
    """The files under each source as they will land. A symbolic link that stays inside the send
    folder is followed (it lands as a copy of what it points to, under the link's name); one that
    leads out, points to nothing or loops is not, and is named in the event log, as is every
    folder with no file under it (an S3 receiver holds files, not folders)."""

    def __init__(self, root: Path, ledger: Ledger, listing: Listing, name_max: int, key_room: int | None):
        self.root, self.ledger, self.listing, self.name_max = root, ledger, listing, name_max
        self.key_room = key_room

    def source(self, index: int, resolved: paths.Resolved) -> SourcePlan:
        plan = SourcePlan(index, resolved, {})
        if not resolved.is_dir:
            self._file(plan, resolved.path.name, resolved.path.stat().st_size)
        elif self._folder(plan, resolved.path, "", frozenset({str(resolved.path)})) == 0:
            self.listing.empty.append(resolved.rel or ".")
        return plan

    def _folder(self, plan: SourcePlan, here: Path, inner: str, above: frozenset[str]) -> int:
        """Walk one folder; the number of files found under it. `above`: the real paths of the
        folders this one is inside, so a link back to one of them is not followed round and round."""
        try:
            children = sorted(os.scandir(here), key=lambda e: e.name)
        except OSError as exc:
            self.listing.left_out.append((self._key(plan, inner) or ".", f"cannot be read: {exc.strerror}"))
            return 0
        found, empty = 0, []
        for child in children:
            name = f"{inner}/{child.name}" if inner else child.name
            path = Path(child.path)
            if child.is_symlink():
                found += self._link(plan, path, name, above, empty)
            elif child.is_dir(follow_symlinks=False):
                count = self._folder(plan, path, name, above | {os.path.realpath(path)})
                found += count
                if count == 0:
                    empty.append(name)
            elif child.is_file(follow_symlinks=False):
                self._file(plan, name, child.stat(follow_symlinks=False).st_size)
                found += 1
            else:
                self.listing.left_out.append((self._key(plan, name), "is not a regular file (a device, pipe or"
                                              " socket)"))
        if found:
            # The outermost empty folders are named; those inside them go without saying.
            self.listing.empty.extend(self._key(plan, name) for name in empty)
        return found

    def _link(self, plan: SourcePlan, path: Path, name: str, above: frozenset[str], empty: list[str]) -> int:
        key = self._key(plan, name)
        real = Path(os.path.realpath(path))
        if real != self.root and self.root not in real.parents:
            self.listing.left_out.append((key, "is a symbolic link leading out of the send folder: not followed"))
            return 0
        if not real.exists():
            self.listing.left_out.append((key, "is a symbolic link to nothing"))
            return 0
        if real.is_dir():
            if str(real) in above:
                self.listing.left_out.append((key, "is a symbolic link to a folder it is inside: not followed"))
                return 0
            self.listing.followed.append(key)
            plan.follow_links = True
            count = self._folder(plan, path, name, above | {str(real)})
            if count == 0:
                empty.append(name)
            return count
        if not real.is_file():
            self.listing.left_out.append((key, "is a symbolic link to something that is not a regular file"))
            return 0
        self.listing.followed.append(key)
        plan.follow_links = True
        self._file(plan, name, real.stat().st_size, real)
        return 1

    def _file(self, plan: SourcePlan, name: str, size: int, real: Path | None = None) -> None:
        """A file of the source under `name` (the plan's key string, kept by the entry too), read at `real` when
        that is a link followed to a file."""
        key = self._key(plan, name)
        entry = FileEntry(plan.place, name, size, real=str(real) if real is not None else None)
        if entry.key != key:
            entry.own_key = key
        entry = self.ledger.add(entry)
        why = names.refusal(entry.key, self.name_max, self.key_room)
        if why:
            # Never renamed, never given to rclone: the file fails on its own, and says why. Its path is
            # reported with any byte that is not UTF-8 written out (\xff): a report is JSON text.
            entry.key = os.fsencode(entry.key).decode("utf-8", "backslashreplace")
            self.ledger.settle(entry, FileOutcome.FAILED, f"not sent: {why}")
            plan.refused.append(entry)
            self.listing.refused.append(entry)
            return
        plan.files[name] = entry

    @staticmethod
    def _key(plan: SourcePlan, name: str) -> str:
        if not plan.resolved.is_dir:
            return plan.rel
        rel = plan.rel
        return f"{rel}/{name}" if rel and name else (rel or name)


def _inside(item: paths.Resolved, other: paths.Resolved) -> bool:
    """`item` is `other` or lies under it (by the names the command used)."""
    return item.rel == other.rel or other.rel == "" or item.rel.startswith(other.rel + "/")
