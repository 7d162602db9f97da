"""Each option of the send form, on a real transfer."""

from __future__ import annotations

import os
import time

import pytest

from tests.harness import MiB, sha256, write_random

pytestmark = pytest.mark.e2e

FINISHED = ("succeeded", "failed", "canceled")


def seed_destination(site, prefix: str, name: str, data: bytes, like: str | None = None):
    """A file already at the receiver, written as the receiver would hold it."""
    path = site.landed(prefix) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if like is not None:
        source = (site.send_dir / like).stat()
        os.utime(path, ns=(source.st_atime_ns, source.st_mtime_ns))
    return path


def test_skip_existing_never_touches_a_file_already_there_and_update_changed_replaces_it(site, alice):
    (site.send_dir / "docs").mkdir()
    (site.send_dir / "docs" / "changed.txt").write_text("the new version, longer than before")
    (site.send_dir / "docs" / "same.txt").write_text("identical on both sides")
    (site.send_dir / "docs" / "new.txt").write_text("not there yet")
    for prefix in ("skip", "update"):
        seed_destination(site, f"{prefix}/docs", "changed.txt", b"the old version")
        seed_destination(site, f"{prefix}/docs", "same.txt", b"identical on both sides")
    time.sleep(1.2)  # past serve s3's directory cache
    site.agent().start()

    skip = site.send(["docs"], prefix="skip", overwrite="skip_existing")
    update = site.send(["docs"], prefix="update", overwrite="update_changed")
    assert alice.wait_state(skip, FINISHED)["state"] == "succeeded"
    assert alice.wait_state(update, FINISHED)["state"] == "succeeded"

    assert (site.landed("skip/docs") / "changed.txt").read_text() == "the old version"
    assert (site.landed("skip/docs") / "new.txt").read_text() == "not there yet"
    skipped = alice.files(skip)
    assert skipped["docs/changed.txt"]["outcome"] == "skipped" and skipped["docs/new.txt"]["outcome"] == "sent"
    # Under skip_existing the file at the receiver is not ours: no checksum claimed for it.
    assert skipped["docs/changed.txt"]["sha256"] == ""

    assert (site.landed("update/docs") / "changed.txt").read_text() == "the new version, longer than before"
    updated = alice.files(update)
    assert {path: row["outcome"] for path, row in updated.items()} == {
        "docs/changed.txt": "sent", "docs/same.txt": "skipped", "docs/new.txt": "sent"}
    assert updated["docs/same.txt"]["sha256"] == sha256(site.send_dir / "docs" / "same.txt")


def test_checksum_verification_finds_a_change_that_size_and_time_do_not_show(site, alice):
    (site.send_dir / "data.txt").write_text("original content")
    # Whole seconds: the receiver shows a file it did not get through S3 with a time to the second.
    os.utime(site.send_dir / "data.txt", (1_700_000_000, 1_700_000_000))
    for prefix in ("off", "on"):
        # Same size, same modification time, different bytes.
        seed_destination(site, prefix, "data.txt", b"ORIGINAL CONTENT", like="data.txt")
    time.sleep(1.2)
    site.agent().start()

    off = site.send(["data.txt"], prefix="off", verify_checksums=False)
    on = site.send(["data.txt"], prefix="on", verify_checksums=True)
    assert alice.wait_state(off, FINISHED)["state"] == "succeeded"
    assert alice.wait_state(on, FINISHED)["state"] == "succeeded"

    assert (site.landed("off") / "data.txt").read_text() == "ORIGINAL CONTENT"
    assert alice.files(off)["data.txt"] == {"path": "data.txt", "size": 16, "sha256": "", "receiver_sha256": "",
                                            "outcome": "skipped", "error": ""}
    assert (site.landed("on") / "data.txt").read_text() == "original content"
    row = alice.files(on)["data.txt"]
    assert row["outcome"] == "sent" and row["sha256"] == sha256(site.send_dir / "data.txt")


def test_the_bandwidth_limit_holds_the_rate_near_the_limit(site, alice):
    write_random(site.send_dir / "limited.bin", 12 * MiB)
    site.agent().start()
    transfer = site.send(["limited.bin"], prefix="limited", bandwidth_limit="4M")
    record = alice.wait_state(transfer, FINISHED, timeout=60)
    assert record["state"] == "succeeded", record
    command = alice.latest_command(transfer)
    from datetime import datetime

    # From the end of the network check (its probe is not the transfer) to the command's end.
    checked = next(e["at"] for e in alice.events(transfer) if e["kind"] == "network_check")
    seconds = (datetime.fromisoformat(command["finished_at"]) - datetime.fromisoformat(checked))
    rate = 12 * MiB / seconds.total_seconds()
    print(f"\nBANDWIDTH limit 4 MiB/s: measured {rate / MiB:.2f} MiB/s over {seconds.total_seconds():.2f} s")
    # rclone's token bucket lets about one second's worth through at once, so the mean runs a little high.
    assert 0.6 * 4 * MiB <= rate <= 1.35 * 4 * MiB, rate / MiB
    assert sha256(site.landed("limited/limited.bin")) == sha256(site.send_dir / "limited.bin")
