"""Issue 20 on the test bed: a WAN outage longer than the sender's retries, in the middle of a large file,
costs at most the parts that did not land, measured at the receiver.

The product inside the bed (tests/harness/bed.py): the portal, Bob's receiver agent serving TLS on the
WAN (port 9443), Alice's sender agent. Bytes are counted at the receiver's S3 port inside the receiver's
namespace by the kernel (tests/harness/received.py), never by the product's counters; the outage starts
when that count reaches half the file."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.faults.conftest import world_in_bed
from tests.harness import MiB, ProductInBed, Received, sha256, wait_for, write_random
from tests.harness.received import available

pytestmark = [pytest.mark.netbed, pytest.mark.faults]

GiB = 1024 * MiB
# The file: 2 GiB, as issue 20 asks. The bed's WAN is raised from the fault suite's 80 Mbit/s to
# 400 Mbit/s for this module (the forwarder carried ~850 Mbit/s of four streams unlimited, docs/testbed.md):
# 2 GiB then takes ~45 s on the wire, so half the file, an outage and a restart that re-sends at most 60%
# fit in the case's ~3 minutes, while today's full re-send (100%) still fits in its timeout.
SIZE = 2 * GiB
RATE_MBIT = 400
# Longer than the sender's retries, so the transfer fails and is restarted (a stall that outlives the outage is
# accepted too): rclone's path (files under the resume cutoff, and every file before issue 20) gives up within
# DTN_RECEIVER_ATTEMPTS (3) x DTN_RECEIVER_RETRY_SECONDS (5 s), its low-level retries failing at once on a WAN
# whose interfaces are down ("network unreachable"); the agent's own multipart upload (agent/sender/multipart.py)
# gives a part in flight its SEND_TIMEOUT (30 s), then retries it after pauses of 1+2+4+8+15 s: ~60 s. At 45 s
# down the multipart upload rode the outage out (15 retries, still active), so the outage is 90 s.
OUTAGE_SECONDS = 90
LOW, HIGH = 0.35, 0.65
MAX_RESENT = 0.60
TEMP = ".rclone_temp_"
TERMINAL = ("succeeded", "failed", "canceled")


class World(ProductInBed):
    def __init__(self, bed, scratch: Path):
        super().__init__(bed, scratch, suffix="resume-outage")
        started = time.monotonic()
        write_random(self.send_dir / "big.bin", SIZE)
        self.digest = sha256(self.send_dir / "big.bin")
        print(f"\nbig.bin: {SIZE / GiB:.0f} GiB written and hashed in {time.monotonic() - started:.1f} s")
        self.received = Received(9443, netns=bed.netns("receiver"))

    def close(self) -> None:
        self.received.stop()
        super().close()


@pytest.fixture(scope="module")
def world():
    reason = available()
    if reason:
        pytest.skip(reason)
    yield from world_in_bed(World, "dtn-resume-outage-", rate_mbit=RATE_MBIT, rtt_ms=2, loss_pct=0)


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink())


@pytest.mark.timeout(300)
def test_a_wan_outage_longer_than_the_retries_at_half_a_2_gib_file_costs_at_most_60_percent(world, record_row):
    """The WAN goes down (both sites' interfaces too) when the receiver has received half of the 2 GiB file,
    for longer than the sender's retries, so the transfer fails or stalls. The link comes back; a failed
    transfer is restarted, as a person would. What the receiver received from the outage to the end is at
    most 60% of the file; the file lands identical and verified; nothing else is left in the receive folder."""
    bed = world.bed
    started = time.monotonic()
    base = world.received.poll()
    transfer = world.send(["big.bin"], prefix="outage", label="outage", network_check="skip")

    def half():
        got = world.received.poll() - base
        if got >= SIZE // 2:
            return got
        return None

    try:
        wait_for(half, 180, "the receiver to receive half of big.bin", 0.02)
        bed.link.down("ifdown")
        down_at = time.monotonic()
        before = world.received.settled(0.5) - base
        mark = world.received.poll()
        assert LOW * SIZE <= before <= HIGH * SIZE, f"the outage began at {before / SIZE:.1%} of the file"
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
        during = world.alice.transfer(transfer)
    finally:
        bed.link.up()
    print(f"after {OUTAGE_SECONDS} s down: the transfer is {during['state']}"
          f" ({(during.get('fatal_error') or {}).get('reason', '')}), faults {during['faults']}")

    record = world.alice.wait_state(transfer, TERMINAL, timeout=200)
    restarted = record["state"] == "failed"
    if restarted:
        print(f"the transfer failed: {record.get('fatal_error')}; restarted")
        world.alice.restart(transfer)
        record = world.alice.wait_state(transfer, TERMINAL, timeout=200)
    resent = world.received.settled(0.5) - mark
    print(f"\nresume after a {OUTAGE_SECONDS} s WAN outage: interrupted at {before / SIZE:.1%} of the file as"
          f" received ({before / MiB:.0f} MiB), re-sent {resent / SIZE:.1%} ({resent / MiB:.0f} MiB) after it,"
          f" restarted by hand {restarted}, state {record['state']}, {time.monotonic() - started:.1f} s in all")
    # A row of the fault suite's table (tests/faults/conftest.py); resent_mib there is the portal's counter.
    record_row(state=record["state"], total_s=round(time.monotonic() - started, 1), recover_s=None,
               retries=record["faults"], attempts=record["attempts"],
               resent_mib=round(record["bytes"]["resent"] / MiB, 1), file_gib=SIZE // GiB,
               outage_at=round(before / SIZE, 3), rx_resent_of_file=round(resent / SIZE, 3),
               restarted_by_hand=restarted)
    if record["state"] != "succeeded":
        world.dump_logs(60, leave_out=("progress report for", "heartbeat failed"))
    assert resent <= MAX_RESENT * SIZE, \
        f"re-sent {resent / SIZE:.1%} of the file ({resent} bytes) after the outage: more than {MAX_RESENT:.0%}"

    assert record["state"] == "succeeded", record
    assert record["files"]["verified"] == 1, record["files"]
    row = world.alice.files(transfer)["big.bin"]
    assert row["sha256"] == row["receiver_sha256"] == world.digest, row
    bucket = world.grant_for(world.receiver)["bucket"]
    assert sha256(world.receive_dir / bucket / "outage" / "big.bin") == world.digest
    left = files_under(world.receive_dir)
    assert not [f for f in left if f.rsplit("/", 1)[-1].startswith(TEMP)], f"temp files left behind: {left}"
    assert left == [f"{bucket}/outage/big.bin"], f"more than the landed file in the receive folder: {left}"
    shutil.rmtree(world.receive_dir / bucket / "outage", ignore_errors=True)
