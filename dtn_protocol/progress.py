"""How far a transfer is, read from its status (the people's API, docs/transfer-record.md):
the pages and the CLI show the same percentage."""

from __future__ import annotations

from dtn_protocol.states import TransferState


def fraction(status: dict) -> float | None:
    """Done fraction 0..1 by bytes (files when the bytes are not known yet), None when nothing is known."""
    files, moved = status.get("files") or {}, status.get("bytes") or {}
    if status.get("state") == TransferState.SUCCEEDED:
        return 1.0
    total = moved.get("total") or 0
    if total > 0:
        done = (moved.get("transferred") or 0) + (moved.get("skipped") or 0)
        return max(0.0, min(1.0, done / total))
    if files.get("total"):
        done = (files.get("transferred") or 0) + (files.get("skipped") or 0)
        return max(0.0, min(1.0, done / files["total"]))
    return None
