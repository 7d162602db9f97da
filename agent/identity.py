"""This agent's identity for leases (docs/protocol.md), kept across restarts in the
state directory, and its hold on that directory for as long as it runs."""

from __future__ import annotations

import fcntl
import os
import re
import secrets
from pathlib import Path

from agent.config import ConfigError

INSTANCE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")

_state_lock = None


def lock_state_dir(state_dir: Path) -> None:
    """Hold the state directory for this process's life. Two processes on one
    directory would share one instance_id, so both would hold the same lease
    and run the same command; the second is refused instead. The kernel drops
    the lock when the process dies, SIGKILL included."""
    global _state_lock
    handle = open(state_dir / "agent.lock", "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ConfigError(f"another agent is running with DTN_STATE_DIR={state_dir}; give each agent its own") from None
    _state_lock = handle


def instance_id(state_dir: Path) -> str:
    path = state_dir / "instance_id"
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        value = ""
    if value:
        if not INSTANCE_ID.match(value):
            raise ConfigError(f"{path} holds no valid instance id; delete it to make a new one")
        return value
    value = secrets.token_hex(16)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return instance_id(state_dir)  # another process made it first
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value
