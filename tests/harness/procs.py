"""What the kernel says of a process under test."""

from __future__ import annotations

from pathlib import Path


def memory_mib(pid: int) -> dict[str, float]:
    """Its resident memory now (VmRSS) and at its peak (VmHWM), in MiB, from /proc/<pid>/status."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0]) / 1024
    return found
