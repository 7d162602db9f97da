"""Stop reaches rclone within seconds; a restart sends only what is missing."""

from __future__ import annotations

import time

import pytest

from tests.harness import MiB, sha256, wait_for, write_random

pytestmark = pytest.mark.e2e

FILES = 40
SIZE = MiB // 4


def identical(site, prefix: str) -> set[str]:
    landed = site.landed(prefix)
    return {f"f{i:02}.bin" for i in range(FILES)
            if (landed / f"f{i:02}.bin").exists()
            and sha256(landed / f"f{i:02}.bin") == sha256(site.send_dir / "many" / f"f{i:02}.bin")}


def test_stop_ends_the_rclone_job_within_5_s_and_a_restart_sends_only_the_rest(site, alice):
    for i in range(FILES):
        write_random(site.send_dir / "many" / f"f{i:02}.bin", SIZE)
    site.agent().start()
    # 10 MiB at 2 MiB/s: about five seconds, time enough to stop it half-way.
    transfer = site.send(["many"], prefix="stopped", bandwidth_limit="2M")

    wait_for(lambda: alice.latest_command(transfer)["progress"].get("files_done", 0) >= 8, 30,
             "some files to land", 0.1)
    asked = time.monotonic()
    alice.stop(transfer)
    alice.wait_state(transfer, "canceled", timeout=10)
    assert time.monotonic() - asked < 5

    # rclone really stopped: nothing more lands after the cancel.
    landed = {p.name for p in (site.landed("stopped/many")).iterdir()}
    time.sleep(1.5)
    assert {p.name for p in (site.landed("stopped/many")).iterdir()} == landed
    done_before = identical(site, "stopped/many")
    assert 8 <= len(done_before) < FILES

    alice.restart(transfer)
    record = alice.wait_state(transfer, ("succeeded", "failed", "canceled"), timeout=60)
    assert record["state"] == "succeeded", record
    assert identical(site, "stopped/many") == {f"f{i:02}.bin" for i in range(FILES)}

    # rclone's own counts for the second attempt: the rest, and only the rest.
    second = alice.latest_command(transfer)
    assert second["attempt"] == 1 and second["progress"]["rclone"]["transfers"] == FILES - len(done_before)
    assert second["progress"]["rclone"]["bytes"] == (FILES - len(done_before)) * SIZE
    assert second["progress"]["files_skipped"] == len(done_before)
    files = alice.files(transfer)
    # Attempt 1 sent those the restart skipped. A file whose upload completed at the receiver just as the
    # job was canceled is one rclone itself never reported done: the restart finds it there and says
    # skipped. At most the files in flight at the stop can be that: as many as the tuning sent at once.
    at_once = max(check["tuning"]["transfers"] for check in alice.call("GET", "/api/v1/network-checks")["results"]
                  if check["transfer_id"] == transfer)
    outcomes = [row["outcome"] for row in files.values()]
    assert set(outcomes) <= {"sent", "skipped"} and outcomes.count("skipped") <= at_once, outcomes
    assert all(row["sha256"] == sha256(site.send_dir / row["path"]) for row in files.values())
    kinds = [e["kind"] for e in alice.events(transfer)]
    assert "stop" in kinds and "complete" in kinds
