"""Files the agent keeps in its state dir (and the certificates it writes), written so that a crash or a
concurrent writer leaves the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """`data` at `path` with `mode`, by rename from a temporary file of this process and thread."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, mode)  # the umask may have taken bits from os.open's mode
    os.replace(tmp, path)


def read_state(path: Path) -> dict:
    """A JSON object kept in the state dir; empty when there is none (or it is unreadable)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_state(path: Path, data: dict, mode: int = 0o600) -> None:
    write_atomic(path, json.dumps(data, sort_keys=True).encode(), mode)
