"""The data-path benchmark's datasets: incompressible bytes (os.urandom), so no layer can
cheat by compressing; one large file, many 1 MiB files, many 64 KiB files, and a tree
shaped like an instrument's output."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from tests.harness import MiB, write_random

DATASETS = ("single", "files1m", "files64k", "mixed")
DATASET_TITLES = {"single": "one large file", "files1m": "1 MiB files", "files64k": "64 KiB files",
                  "mixed": "mixed research tree"}


@dataclass
class Dataset:
    link: str  # "clean" or "lossy" (the BBR row uses the lossy link's)
    name: str
    root: Path  # the send dir
    rel: str  # the source, relative to the send dir: a file or a folder
    files: int = 0
    bytes: int = 0

    @property
    def path(self) -> Path:
        return self.root / self.rel


def make_datasets(send_dir: Path, link: str, sizes: tuple, names=DATASETS) -> dict[str, Dataset]:
    """Incompressible bytes (os.urandom), so no layer can cheat by compressing."""
    single, n1m, n64k, mixed = sizes
    made = {}
    if "single" in names:
        ds = made["single"] = Dataset(link, "single", send_dir, f"{link}/single/data.bin")
        write_random(ds.path, single)
    if "files1m" in names:
        ds = made["files1m"] = Dataset(link, "files1m", send_dir, f"{link}/files1m")
        for i in range(n1m):
            write_random(ds.path / f"d{i // 100:02d}" / f"f{i:05d}.bin", MiB)
    if "files64k" in names:
        ds = made["files64k"] = Dataset(link, "files64k", send_dir, f"{link}/files64k")
        for i in range(n64k):
            write_random(ds.path / f"d{i // 500:02d}" / f"f{i:05d}.bin", 64 * 1024)
    if "mixed" in names:
        ds = made["mixed"] = Dataset(link, "mixed", send_dir, f"{link}/mixed")
        mixed_tree(ds.path, mixed, random.Random(f"mixed-{link}"))
    for ds in made.values():
        files = [ds.path] if ds.path.is_file() else [p for p in ds.path.rglob("*") if p.is_file()]
        ds.files, ds.bytes = len(files), sum(p.stat().st_size for p in files)
    return made


def mixed_tree(root: Path, total: int, rng: random.Random) -> None:
    """Shaped like an instrument's output: one raw capture (40% of the bytes), processed 4 MiB chunks (30%),
    quick-look products of 256 KiB-2 MiB (15%), and many small metadata/log files of 1-64 KiB (15%), in a
    nested run/sample layout."""
    write_random(root / "raw" / "run01" / "capture.raw", int(total * 0.40))
    budget = int(total * 0.30)
    index = 0
    while budget > 0:
        size = min(4 * MiB, budget)
        write_random(root / "processed" / f"run01/sample{index % 8:02d}" / f"chunk{index:04d}.nc", size)
        budget -= size
        index += 1
    budget, index = int(total * 0.15), 0
    while budget > 0:
        size = min(rng.randint(256 * 1024, 2 * MiB), budget)
        write_random(root / "quicklook" / f"sample{index % 8:02d}" / f"plot{index:04d}.png", size)
        budget -= size
        index += 1
    budget, index = int(total * 0.15), 0
    while budget > 0:
        size = min(rng.randint(1024, 64 * 1024), budget)
        write_random(root / "meta" / f"sample{index % 16:02d}" / f"shot{index // 16 % 40:02d}" / f"m{index:05d}.json", size)
        budget -= size
        index += 1


def landed(root: Path) -> tuple[int, int]:
    files = [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
    return len(files), sum(p.stat().st_size for p in files)

