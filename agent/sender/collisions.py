"""No silent overwrite (docs/agent.md, "Names"): on a receiver whose filesystem ignores case or
Unicode form (its heartbeat says so), two paths can land as one file, the second over the first.
Such a transfer is refused as name_collision, naming both paths, before anything is sent: two of
its own paths, or one of its paths and a file of another name already at the receiver."""

from __future__ import annotations

import posixpath
from typing import Callable

from agent import names
from agent.sender.destination import Destination
from agent.sender.errors import TransferFailed
from agent.sender.ledger import SourcePlan, entries
from dtn_protocol.failures import FailureReason

SHOWN = 10


def _folding(d: Destination):
    if not (d.case_insensitive or d.normalization_insensitive):
        return None
    return lambda name: names.fold(name, case_insensitive=d.case_insensitive,
                                   normalization_insensitive=d.normalization_insensitive)


def refuse_within(plans: list[SourcePlan], d: Destination) -> None:
    fold = _folding(d)
    if fold is None:
        return
    seen: dict[str, str] = {}
    pairs = []
    for entry in entries(plans):
        first = seen.setdefault(fold(entry.key), entry.key)
        if first != entry.key:
            pairs.append((first, entry.key))
    _refuse(d, pairs, "these would land as one file")


def refuse_with_destination(plans: list[SourcePlan], d: Destination, list_files: Callable[[str], list[dict]],
                             list_folders: Callable[[str], list[dict]]) -> None:
    """`list_files(path)`: every file under `path` at the destination (rclone's operations/list, recursive);
    `list_folders(path)`: the folders directly in it; `path` from the bucket's root."""
    fold = _folding(d)
    if fold is None:
        return
    prefix = [part for part in d.prefix.split("/") if part]
    found: dict[str, list[dict]] = {}
    pairs = []
    for plan in plans:
        folder = plan.rel if plan.resolved.is_dir else posixpath.dirname(plan.rel)
        # The folder these files land in as the receiver names it: on a filesystem that ignores case, a
        # `RUN` sent where `run` is lands in `run`, which a listing of `RUN` (an S3 prefix, compared exactly)
        # would show empty. The prefix's parts too: `Lab` and `lab` are one folder there.
        there = _folder_there(prefix + [part for part in folder.split("/") if part], fold, list_folders, found)
        shown = "/".join(there[len(prefix):])  # the receiver's own path, from the prefix like the transfer's
        files = {}
        for item in list_files("/".join(there)):
            name = names.from_rclone(item.get("Path") or "")
            # Matched by where it lands as the transfer names it; named in the refusal as it is there.
            files.setdefault(fold(f"{folder}/{name}" if folder else name), f"{shown}/{name}" if shown else name)
        for entry in plan.files.values():
            other = files.get(fold(entry.key))
            if other is not None and other != entry.key:
                pairs.append((entry.key, other))
    _refuse(d, pairs, "each would land on a file of the other name already at the receiver")


def _folder_there(parts: list[str], fold, list_folders, found: dict[str, list[dict]]) -> list[str]:
    """`parts` (a path from the bucket's root), each as the receiver names the folder it would land in: its
    exact name if there, else one equal to it folded, else as given (nothing there yet)."""
    there: list[str] = []
    for part in parts:
        here = "/".join(there)
        if here not in found:
            found[here] = list_folders(here)
        folders = [names.from_rclone(item.get("Name") or item.get("Path") or "").rsplit("/", 1)[-1]
                   for item in found[here]]
        if part not in folders:
            part = next((name for name in folders if fold(name) == fold(part)), part)
        there.append(part)
    return there


def _refuse(d: Destination, pairs: list[tuple[str, str]], what: str) -> None:
    if not pairs:
        return
    how = " and ".join(word for word, on in (("case", d.case_insensitive),
                                            ("Unicode form", d.normalization_insensitive)) if on)
    shown = "; ".join(f"{a!r} and {b!r}" for a, b in pairs[:SHOWN])
    more = f" (and {len(pairs) - SHOWN} more pairs)" if len(pairs) > SHOWN else ""
    raise TransferFailed(FailureReason.NAME_COLLISION, f"the receiver's filesystem ignores {how} in names, so {what}:"
                         f" {shown}{more}. Nothing was sent; rename one of each pair")
