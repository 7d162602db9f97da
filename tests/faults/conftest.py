"""The whole product inside the test bed (tests/netbed), for the fault suite: the portal
in its namespace, a receiver agent (TLS on) in the receiver namespace serving grants on
its WAN address, and per test a fresh sender container whose agent (and the `rclone rcd`
it starts) runs in the sender namespace (tests/harness/bed.py).

Each case appends a measurement row to `<session temp dir>/fault-recovery.json`;
the terminal summary prints the table."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.harness import MiB, ProductInBed, sha256, write_random
from tests.netbed.plugin import netbed, pytest_sessionfinish, start_bed  # noqa: F401

RATE_MBIT = 80
BIG_FILE_SIZE = 100 * MiB
SMALL_FILES = 200


def make_dataset(send_dir: Path, big: int = BIG_FILE_SIZE, small: int = SMALL_FILES) -> dict[str, str]:
    """big.bin (100 MiB), small/ (200 files of 2-21 KiB), medium/ (10 x 4.5 MiB, the lossy case's data)."""
    write_random(send_dir / "big.bin", big)
    for index in range(10):
        write_random(send_dir / "medium" / f"m{index:02d}.bin", 9 * MiB // 2)
    for index in range(small):
        folder = send_dir / "small" / f"d{index % 8}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{index:04d}.dat").write_bytes(os.urandom(2048 + index * 97))
    return {p.relative_to(send_dir).as_posix(): sha256(p) for p in send_dir.rglob("*") if p.is_file()}


def subset(expected: dict[str, str], sources) -> dict[str, str]:
    return {p: h for p, h in expected.items() if any(p == s or p.startswith(s + "/") for s in sources)}


class World(ProductInBed):
    """Bed + portal + Bob's receiver + Alice; a fresh sender per test."""

    def __init__(self, bed, scratch: Path):
        super().__init__(bed, scratch, suffix="faults", sender=False)
        self.everything = make_dataset(self.send_dir)
        self.expected = subset(self.everything, ("big.bin", "small"))
        self.dataset_bytes = self.size(self.expected)
        self._senders = 0

    def size(self, files) -> int:
        return sum((self.send_dir / p).stat().st_size for p in files)

    def new_sender(self, count: int = 1, **env):
        self._senders += 1
        return self.add_sender(f"sender-{self._senders}", count, **env)

    def send(self, sender_box, receiver_box=None, sources=("big.bin", "small"), prefix=None,
             **options) -> tuple[str, str]:
        prefix = prefix or f"t-{secrets.token_hex(4)}"
        transfer_id = self.alice.call("POST", "/api/v1/transfers", 201, json={
            "sender": sender_box["container_id"], "receiver": (receiver_box or self.receiver)["container_id"],
            "sources": list(sources), "prefix": prefix, "label": prefix, **options})["transfer_id"]
        return transfer_id, prefix

    def landed(self, bucket: str, prefix: str, receive_dir: Path | None = None) -> dict[str, str]:
        root = (receive_dir or self.receive_dir) / bucket / prefix
        return {p.relative_to(root).as_posix(): sha256(p) for p in root.rglob("*") if p.is_file()}

    def dump_logs(self) -> None:
        super().dump_logs(60, leave_out=("progress report for", "heartbeat failed"))


def world_in_bed(make, prefix: str, **link):
    """A bed with a world made in it (`make(bed, scratch)`), and everything gone afterwards."""
    bed = start_bed(cc="cubic", **link)
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    made = None
    try:
        made = make(bed, scratch)
        yield made
    finally:
        if made is not None:
            made.close()
        bed.close()
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="module")
def world():
    yield from world_in_bed(World, "dtn-faults-", rate_mbit=RATE_MBIT, rtt_ms=2, loss_pct=0)


@pytest.fixture
def fresh_link(world):
    world.bed.link.up()
    world.bed.link.set(rate_mbit=RATE_MBIT, rtt_ms=2, loss_pct=0)
    world.bed.set_congestion_control("cubic")
    yield world
    world.bed.link.up()
    world.bed.link.set(rate_mbit=RATE_MBIT, rtt_ms=2, loss_pct=0)


# --- measurement rows --------------------------------------------------------

def _results_path(config) -> Path:
    base = Path(config._tmp_path_factory.getbasetemp()) if hasattr(config, "_tmp_path_factory") else Path(tempfile.gettempdir())
    return base / "fault-recovery.json"


@pytest.fixture
def record_row(request):
    path = _results_path(request.config)

    def record(**row):
        rows = json.loads(path.read_text()) if path.exists() else []
        rows.append({"case": request.node.name, **row})
        path.write_text(json.dumps(rows, indent=1))
        print(f"fault row: {json.dumps(rows[-1])}")

    return record


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    path = _results_path(config)
    if not path.exists():
        return
    rows = json.loads(path.read_text())
    terminalreporter.section(f"fault suite: recovery ({path})")
    terminalreporter.write_line(f"{'case':58} {'state':10} {'total s':>8} {'recover s':>9} {'retries':>7} "
                                f"{'attempts':>8} {'resent MiB':>10}  notes")
    for row in rows:
        terminalreporter.write_line(
            f"{row['case'][:58]:58} {row.get('state', ''):10} {row.get('total_s', 0):8.1f} "
            f"{row.get('recover_s') if row.get('recover_s') is not None else '-':>9} {row.get('retries', 0):7} "
            f"{row.get('attempts', 0):8} {row.get('resent_mib', 0):10.1f}  "
            + ", ".join(f"{k}={v}" for k, v in row.items() if k not in _TABLE_KEYS))


_TABLE_KEYS = {"case", "state", "total_s", "recover_s", "retries", "attempts", "resent_mib"}
