"""How sizes and speeds are written for people: IEC units (1 KiB = 1024 B), one
decimal. The pages, the CLI and the agent's logs all write them here, so a number
reads the same wherever it is seen. (The pages' script, portal/static/portal/live.js,
writes the same form in the browser.)"""

from __future__ import annotations

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(value: float | int | None) -> str:
    """'1023 B', '1.5 GiB'; '-' for an unknown size."""
    if value is None:
        return "-"
    value = float(value)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_speed(bytes_per_s: float | int | None) -> str:
    """'50.0 MiB/s'; '-/s' for an unknown speed."""
    return f"{human_bytes(bytes_per_s)}/s"
