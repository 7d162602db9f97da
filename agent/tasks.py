"""Side-channel tasks over files, shared by the sender and the receiver (docs/protocol.md,
"Side channel"). A handler is a plain function `params -> result dict`; it raises
`TaskRefused` for a request it will not do (the message goes back to the person who
asked) and must finish in seconds."""

from __future__ import annotations

import hashlib
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, ContextManager

from agent import paths

Handler = Callable[[dict], dict]
LIST_LIMIT = 1000
VERIFY_MAX_FILES = 1000
# A side-channel answer should come in seconds; hashing more than this is a transfer's job.
VERIFY_MAX_BYTES = 2 * 1024**3


class TaskRefused(Exception):
    """The task cannot be done as asked; the message is for the person who asked."""


class FolderTasks:
    """Tasks over one folder (the send folder here; a receiver passes its receive folder).

    `max_bytes` bounds what one verify_files task reads; None for none (a receiver
    verifying a transfer, where the portal sizes the task's deadline to the data)."""

    def __init__(self, root: Path, max_bytes: int | None = VERIFY_MAX_BYTES):
        self.root = Path(root).resolve()
        self.max_bytes = max_bytes

    def _resolve(self, raw: str) -> paths.Resolved:
        try:
            return paths.resolve(self.root, raw)
        except paths.PathRefused as refused:
            raise TaskRefused(refused.message) from None

    def list_folder(self, params: dict) -> dict:
        """One level of the folder: what the send form offers to pick from."""
        raw = params.get("path") or "."
        limit = params.get("limit", LIST_LIMIT)
        if not isinstance(limit, int) or not 1 <= limit <= 10 * LIST_LIMIT:
            raise TaskRefused(f"limit must be between 1 and {10 * LIST_LIMIT}")
        where = self._resolve(raw)
        if not where.is_dir:
            raise TaskRefused(f"{raw!r} is a file, not a folder")
        entries = []
        truncated = False
        for child in sorted(where.path.iterdir(), key=lambda p: p.name):
            if len(entries) >= limit:
                truncated = True
                break
            info = child.lstat()
            if stat.S_ISLNK(info.st_mode):
                kind = "link"
            elif stat.S_ISDIR(info.st_mode):
                kind = "dir"
            elif stat.S_ISREG(info.st_mode):
                kind = "file"
            else:
                continue
            entries.append({"name": child.name, "path": f"{where.rel}/{child.name}" if where.rel else child.name,
                            "type": kind, "size": info.st_size if kind == "file" else None,
                            "mtime": int(info.st_mtime)})
        return {"path": where.rel, "entries": entries, "truncated": truncated}

    def verify_files(self, params: dict) -> dict:
        """SHA-256 and size of the named files, to compare with the other side's."""
        return verify_each(params, self._locate, self.max_bytes)

    def _locate(self, name: str) -> Located:
        where = self._resolve(name)
        if where.is_dir:
            raise TaskRefused("a folder, not a file")
        return Located(where.rel, where.path.stat().st_size, lambda: open(where.path, "rb"))


@dataclass(frozen=True)
class Located:
    """One file a verify task names, found: its normalised path, its size, and how to read it."""

    rel: str
    size: int
    open: Callable[[], ContextManager[BinaryIO]]


def verify_each(params: dict, locate: Callable[[str], Located], max_bytes: int | None) -> dict:
    """The verify task over any store: `locate` finds one named file or raises TaskRefused,
    which is that file's answer (the others are still hashed). A receive folder and a
    MinIO's buckets (agent/minio_grants.py) answer alike."""
    names = params.get("paths")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise TaskRefused("paths must be a non-empty list of file paths")
    if len(names) > VERIFY_MAX_FILES:
        raise TaskRefused(f"at most {VERIFY_MAX_FILES} files per task")
    results, budget = [], max_bytes
    for name in names:
        try:
            found = locate(name)
        except TaskRefused as refused:
            results.append({"path": name, "error": str(refused)})
            continue
        if budget is not None:
            if found.size > budget:
                results.append({"path": name, "size": found.size, "error": "too large for a side-channel task"})
                continue
            budget -= found.size
        with found.open() as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        results.append({"path": found.rel, "size": found.size, "sha256": digest})
    return {"files": results}
