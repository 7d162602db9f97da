"""What every `dtn` command shares: its exit statuses, its one error, and how it writes tables, JSON and times."""

from __future__ import annotations

import json
from datetime import datetime, timezone

EXIT_OK = 0
EXIT_TRANSFER_FAILED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_TIMEOUT = 4
EXIT_UNREACHABLE = 5


class Fail(Exception):
    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def print_json(value) -> None:
    print(json.dumps(value, indent=2, default=str))


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in [header, *rows]]
    return "\n".join(lines)


def human_time(value: str | None, now: datetime | None = None, precise: bool = False) -> str:
    """An API timestamp as a person reads it: "12 s ago" within a day, else the local date and minute;
    `precise`: the local date and second, for lists whose order and spacing matter (events).

    The API's ISO form (microseconds, UTC offset) stays for --json, where a script parses it."""
    if not value:
        return "never"
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    if precise:
        return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    now = now or datetime.now(timezone.utc)
    seconds = (now - moment).total_seconds()
    # A clock a little ahead of the portal's would show "in 2 s" for what just happened.
    if -60 < seconds < 5:
        return "just now"
    if 0 < seconds < 60:
        return f"{int(seconds)} s ago"
    if 0 < seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if 0 < seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")
