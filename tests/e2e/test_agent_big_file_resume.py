"""A large file among small ones, through a real agent, rclone and serve s3: stopped half-way and restarted,
the large file costs only the parts the receiver did not hold (the agent's own multipart upload); sent
again, an unchanged large file is skipped like the small ones. The 2 GiB cases the issue names, measured at
the receiver's sockets, are in test_resume_large_file.py."""

from __future__ import annotations

import time

import pytest

from tests.harness import MiB, sha256, wait_for, write_random

pytestmark = pytest.mark.e2e

BIG = 64 * MiB
SMALL = 20


def dataset(site) -> dict[str, str]:
    write_random(site.send_dir / "mixed" / "big.bin", BIG)
    for i in range(SMALL):
        write_random(site.send_dir / "mixed" / "small" / f"s{i:02}.dat", 10_000 + i)
    return {p.relative_to(site.send_dir).as_posix(): sha256(p) for p in (site.send_dir / "mixed").rglob("*")
            if p.is_file()}


def test_a_stopped_large_file_restarts_from_the_parts_the_receiver_holds(site, alice):
    sums = dataset(site)
    site.agent(DTN_RESUME_CUTOFF_MIB="16").start()
    # 64 MiB at 16 MiB/s: four seconds, time enough to stop it half-way.
    transfer = site.send(["mixed"], prefix="big", bandwidth_limit="16M")
    wait_for(lambda: alice.latest_command(transfer)["progress"].get("bytes", 0) >= BIG // 2, 60,
             "half the large file to move", 0.05)
    asked = time.monotonic()
    alice.stop(transfer)
    alice.wait_state(transfer, "canceled", timeout=10)
    assert time.monotonic() - asked < 5
    kept = [e for e in alice.events(transfer) if e["kind"] == "kept"]
    assert kept and "mixed/big.bin" in kept[0]["message"] and "a restart sends only the rest" in kept[0]["message"]

    alice.restart(transfer)
    record = alice.wait_state(transfer, ("succeeded", "failed", "canceled"), timeout=90)
    assert record["state"] == "succeeded", record
    for key, digest in sums.items():
        assert sha256(site.landed("big") / key) == digest, key
    second = alice.latest_command(transfer)["progress"]
    # The restart moved the large file's missing parts and the small files. Under a 16 MiB/s limit the parts
    # of 16 MiB go one at a time (they would share the limit and all be cut by the stop): one was in flight.
    assert second["rclone"]["bytes"] <= BIG // 2 + 16 * MiB + SMALL * 11_000
    # The record counts the parts the receiver held as done, not as re-sent: only the part cut short is.
    counted = alice.transfer(transfer)["bytes"]
    assert counted["transferred"] == BIG + sum(10_000 + i for i in range(SMALL)), counted
    assert counted["resent"] <= 16 * MiB, counted
    resumed = [e["message"] for e in alice.events(transfer) if e["kind"] == "resume" and "big.bin" in e["message"]]
    assert resumed and "the receiver holds" in resumed[0], resumed
    files = alice.files(transfer)
    assert files["mixed/big.bin"]["outcome"] == "sent" and files["mixed/big.bin"]["sha256"] == sums["mixed/big.bin"]
    assert all(row["sha256"] == sums[row["path"]] for row in files.values())
    assert not list(site.recv_dir.rglob(".rclone_temp_*")), "nothing left behind at the receiver"
    assert not list((site.scratch / "state" / "uploads").glob("*.json")), "the upload's state is gone once done"


def test_an_unchanged_large_file_sent_again_is_skipped_and_a_changed_one_sent(site, alice):
    sums = dataset(site)
    site.agent(DTN_RESUME_CUTOFF_MIB="16").start()
    first = site.send(["mixed"], prefix="again")
    assert alice.wait_state(first, ("succeeded", "failed"), timeout=90)["state"] == "succeeded"
    landed = site.landed("again") / "mixed" / "big.bin"
    # The source's modification time travels with it (rclone's metadata), as for rclone's own uploads.
    assert abs(landed.stat().st_mtime - (site.send_dir / "mixed" / "big.bin").stat().st_mtime) < 1e-3

    second = site.send(["mixed"], prefix="again", overwrite="update_changed")
    record = alice.wait_state(second, ("succeeded", "failed"), timeout=90)
    assert record["state"] == "succeeded", record
    progress = alice.latest_command(second)["progress"]
    assert progress["rclone"]["bytes"] == 0 and progress["files_skipped"] == SMALL + 1

    write_random(site.send_dir / "mixed" / "big.bin", BIG)
    third = site.send(["mixed"], prefix="again", overwrite="update_changed")
    assert alice.wait_state(third, ("succeeded", "failed"), timeout=90)["state"] == "succeeded"
    assert sha256(landed) == sha256(site.send_dir / "mixed" / "big.bin") != sums["mixed/big.bin"]
    assert alice.files(third)["mixed/big.bin"]["outcome"] == "sent"


def test_a_large_file_of_the_whole_send_folder_lands_under_its_own_name(site, alice):
    """The source "." (the send folder itself): the key is the prefix and the file's name, nothing between."""
    write_random(site.send_dir / "whole.bin", 20 * MiB)
    site.agent(DTN_RESUME_CUTOFF_MIB="16").start()
    transfer = site.send(["."], prefix="root")
    record = alice.wait_state(transfer, ("succeeded", "failed"), timeout=90)
    assert record["state"] == "succeeded", record
    assert sha256(site.landed("root") / "whole.bin") == sha256(site.send_dir / "whole.bin")
    assert sorted(p.relative_to(site.landed()).as_posix() for p in site.landed().rglob("*")) == ["root", "root/whole.bin"]
    assert alice.files(transfer)["whole.bin"]["outcome"] == "sent"
