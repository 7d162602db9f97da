"""How `dtn` shows numbers: durations, and the one-line progress of a transfer (sizes and speeds as
dtn_protocol.units writes them everywhere)."""

from __future__ import annotations

from dtn_protocol.progress import fraction
from dtn_protocol.states import FINISHED_TRANSFER_STATES as FINISHED, TransferState
from dtn_protocol.units import human_bytes, human_speed


def human_duration(seconds: float | int | None) -> str:
    if seconds is None or seconds < 0:
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 100:
        return f"{hours // 24}d{hours % 24:02}h"
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes:02}:{secs:02}"


def bar(value: float | None, width: int = 20) -> str:
    if value is None:
        return "[" + "." * width + "]"
    filled = int(value * width)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def progress_line(status: dict, width: int = 20, with_bar: bool = True) -> str:
    """One line: bar, percent, bytes done/total, speed, ETA, files done/total, state."""
    files, moved = status.get("files") or {}, status.get("bytes") or {}
    done_fraction = fraction(status)
    percent = "  ?%" if done_fraction is None else f"{done_fraction * 100:3.0f}%"
    done_bytes = (moved.get("transferred") or 0) + (moved.get("skipped") or 0)
    total_bytes = moved.get("total") or 0
    done_files = (files.get("transferred") or 0) + (files.get("skipped") or 0)
    state = status.get("state") or "?"
    finished = state in FINISHED
    speed = status.get("effective_speed") if finished else status.get("speed")
    parts = [percent,
             f"{human_bytes(done_bytes)}/{human_bytes(total_bytes) if total_bytes else '?'}",
             human_speed(speed) if speed else "-/s",
             "ETA " + ("00:00" if state == TransferState.SUCCEEDED else human_duration(status.get("eta"))),
             f"files {done_files}/{files.get('total') or '?'}"]
    if moved.get("resent"):
        # Sent again after a stop or a lost lease: shown apart, as on the page, never as progress.
        parts.append(f"+{human_bytes(moved['resent'])} re-sent")
    if files.get("failed"):
        parts.append(f"{files['failed']} failed")
    label = state
    if status.get("stop_requested") and not finished:
        label += " (stopping)"
    parts.append(label)
    line = "  ".join(parts)
    return f"{bar(done_fraction, width)} {line}" if with_bar else line


def _resent(status: dict) -> str:
    resent = (status.get("bytes") or {}).get("resent")
    return f", {human_bytes(resent)} re-sent" if resent else ""


def final_line(status: dict) -> str:
    """What is left on screen when watching ends."""
    state = status.get("state")
    files = status.get("files") or {}
    if state == TransferState.SUCCEEDED:
        return (f"transfer {status.get('transfer_id')} succeeded: {files.get('total', 0)} files, "
                f"{human_bytes((status.get('bytes') or {}).get('total'))}, "
                f"{files.get('verified', 0)} verified, {files.get('skipped', 0)} skipped{_resent(status)}")
    fatal = status.get("fatal_error") or {}
    why = f": {fatal.get('reason')}: {fatal.get('message')}" if fatal else ""
    return f"transfer {status.get('transfer_id')} {state}{why}"
