"""Small things every end-to-end test needs: data to send, its checksums, a scratch
folder removed at the end, and a patient wait."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

MiB = 1024 * 1024


def sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def write_random(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        left = size
        while left:
            chunk = min(left, 8 * MiB)
            handle.write(os.urandom(chunk))
            left -= chunk
    return path


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    """Poll until `predicate()` is truthy; its value is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class Scratch:
    """A temporary directory removed at the end, even after a failure."""

    def __init__(self, prefix: str):
        self.path = Path(tempfile.mkdtemp(prefix=prefix))

    def __truediv__(self, other) -> Path:
        return self.path / other

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
