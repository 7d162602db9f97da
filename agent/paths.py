"""Paths inside the send folder, and nowhere else.

A path from the portal is a request, not a fact: it may be absolute, climb
with `..`, or pass through a symbolic link that leads out of the folder.
Everything the agent reads on the portal's behalf (a transfer's sources, a
side-channel listing or checksum) goes through `resolve`.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from pathlib import Path

from agent.failures import ReasonedError
from dtn_protocol.failures import FailureReason


class PathRefused(ReasonedError):
    pass


@dataclass(frozen=True)
class Resolved:
    rel: str  # normalised, relative to the send folder, "/"-separated; "" is the folder itself
    path: Path  # the real path, links resolved, inside the folder
    is_dir: bool


def normalise(raw: str) -> str:
    """The relative path a request names, or PathRefused."""
    if not isinstance(raw, str) or raw == "" or "\x00" in raw:
        raise PathRefused(FailureReason.SOURCE_MISSING, f"not a usable path: {raw!r}")
    if raw.startswith("/"):
        raise PathRefused(FailureReason.SOURCE_OUTSIDE_ROOT,
                          f"{raw!r} is absolute; paths are relative to the send folder")
    rel = posixpath.normpath(raw)
    if rel == ".":
        return ""
    if rel == ".." or rel.startswith("../"):
        raise PathRefused(FailureReason.SOURCE_OUTSIDE_ROOT, f"{raw!r} leads out of the send folder")
    return rel


def resolve(root: Path, raw: str) -> Resolved:
    """`raw` inside `root` (already resolved), links followed, or PathRefused."""
    rel = normalise(raw)
    lexical = root / rel if rel else root
    if not os.path.lexists(lexical):
        raise PathRefused(FailureReason.SOURCE_MISSING, f"{raw!r} does not exist in the send folder")
    real = Path(os.path.realpath(lexical))
    if real != root and root not in real.parents:
        raise PathRefused(FailureReason.SOURCE_OUTSIDE_ROOT,
                          f"{raw!r} resolves outside the send folder (through a symbolic link)")
    if not real.exists():
        raise PathRefused(FailureReason.SOURCE_MISSING, f"{raw!r} is a link to nothing")
    if real.is_dir():
        return Resolved(rel, real, True)
    if real.is_file():
        return Resolved(rel, real, False)
    raise PathRefused(FailureReason.SOURCE_MISSING, f"{raw!r} is neither a file nor a directory")
