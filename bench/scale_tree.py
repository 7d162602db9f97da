"""`make bench-scale`'s dataset: N files of 0–1024 bytes (sizes from a seeded RNG) in nested folders of
1,000 files each, written as fast as Python can (os.open/os.write/os.close in a tight loop, the bytes
sliced out of one random buffer, so no layer can compress them); counted and removed the same way."""

from __future__ import annotations

import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

PER_FOLDER = 1000
MAX_SIZE = 1024
FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)


@dataclass
class Tree:
    root: Path
    files: int
    bytes: int
    folders: int
    seconds: float  # to write it

    def as_dict(self) -> dict:
        return {"files": self.files, "bytes": self.bytes, "folders": self.folders, "per_folder": PER_FOLDER,
                "sizes": f"0-{MAX_SIZE} bytes, uniform", "write_seconds": round(self.seconds, 1),
                "files_per_s_written": round(self.files / self.seconds) if self.seconds else None}


def folder_of(index: int) -> str:
    """File `index`'s folder: 1,000 files a folder, 100 folders a parent (`00/07` holds files 7,000-7,999)."""
    folder = index // PER_FOLDER
    return f"{folder // 100:03d}/{folder % 100:02d}"


def make_tree(root: Path, count: int, seed: int = 22) -> Tree:
    started = time.monotonic()
    rng = random.Random(seed)
    noise = memoryview(os.urandom(1 << 20))
    span = len(noise) - MAX_SIZE
    total = 0
    folders = 0
    current = None
    write, open_, close, randint = os.write, os.open, os.close, rng.randint
    for index in range(count):
        if index % PER_FOLDER == 0:
            current = root / folder_of(index)
            current.mkdir(parents=True, exist_ok=True)
            current = f"{current}/"
            folders += 1
        size = randint(0, MAX_SIZE)
        fd = open_(f"{current}f{index:07d}.bin", FLAGS, 0o644)
        if size:
            offset = randint(0, span)
            write(fd, noise[offset:offset + size])
        close(fd)
        total += size
    return Tree(root, count, total, folders, time.monotonic() - started)


def count_tree(root: Path) -> tuple[int, int]:
    """(files, bytes) under `root`, by scandir (its d_type spares a stat per folder entry)."""
    files = size = 0
    stack = [str(root)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except FileNotFoundError:
            continue
        with entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    files += 1
                    size += entry.stat(follow_symlinks=False).st_size
    return files, size


def remove_tree(root: Path) -> float:
    """Seconds taken to remove `root` and everything below it."""
    started = time.monotonic()
    shutil.rmtree(root, ignore_errors=True)
    return time.monotonic() - started
