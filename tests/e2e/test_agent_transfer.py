"""The sender agent end to end: a portal server, the agent (which starts its own
rclone rcd) and an `rclone serve s3` receiver, all real processes on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.harness import RCLONE, MiB, sha256, wait_for, write_random

pytestmark = pytest.mark.e2e


def small_tree(root: Path, count: int) -> dict[str, bytes]:
    """Nested folders, names with spaces and non-ASCII letters."""
    made = {}
    for i in range(count):
        rel = f"run ß{i % 4}/Ordner {i % 7}/ñame {i} é.txt" if i % 3 else f"top-{i}.bin"
        data = os.urandom(100 + (i * 37) % 4000)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        made[rel] = data
    return made


def test_a_big_file_and_a_tree_of_small_files_move_in_queue_order_byte_identical(site, alice):
    big = write_random(site.send_dir / "big.bin", 200 * MiB)
    tree = small_tree(site.send_dir / "tree", 500)
    agent = site.agent().start()

    first = site.send(["big.bin"], prefix="from-alice/big")
    second = site.send(["tree"], prefix="from-alice")

    # While the big file moves, its byte count grows and the tree waits its turn.
    seen_bytes = []
    def big_done():
        command = alice.latest_command(first)
        if command["state"] == "running" and command["progress"].get("bytes") is not None:
            seen_bytes.append(command["progress"]["bytes"])
            assert alice.transfer(second)["state"] == "queued"
        return command["state"] in ("succeeded", "failed", "canceled")
    wait_for(big_done, 120, "the big file", interval=0.2)

    record = alice.wait_state(second, ("succeeded", "failed", "canceled"), timeout=120)
    first_record = alice.transfer(first)
    assert first_record["state"] == "succeeded", first_record
    assert record["state"] == "succeeded", record
    # The second transfer to the same endpoint reuses the first one's probe; the rest is checked again.
    assert first_record["network_check"]["probe"].get("reused_from_seconds_ago") is None
    second_check = record["network_check"]
    assert second_check["probe"]["reused_from_seconds_ago"] >= 0, second_check
    assert second_check["details"]["s3"]["read_back"] is True and second_check["rtt_ms"]["samples"] == 5
    growing = [b for i, b in enumerate(seen_bytes) if i == 0 or b != seen_bytes[i - 1]]
    assert len(growing) >= 2 and growing == sorted(growing) and growing[-1] > 0, seen_bytes
    # Queue order: the tree's command was claimed only after the big file's had finished.
    big_command = alice.command(first_record["commands"][-1]["command_id"])
    tree_command = alice.command(record["commands"][-1]["command_id"])
    assert _time(tree_command["claimed_at"]) >= _time(big_command["finished_at"])

    # Byte-identical, at the prefix the send form asked for.
    assert sha256(site.landed("from-alice/big/big.bin")) == sha256(big)
    for rel, data in tree.items():
        assert (site.landed("from-alice/tree") / rel).read_bytes() == data, rel

    # The portal holds the sender's SHA-256 of every file, as the agent reported it.
    files = alice.files(first)
    assert files["big.bin"]["sha256"] == sha256(big) and files["big.bin"]["outcome"] == "sent"
    tree_files = alice.files(second)
    assert len(tree_files) == 500
    for rel, data in tree.items():
        row = tree_files[f"tree/{rel}"]
        assert row["outcome"] == "sent" and row["sha256"] == hashlib.sha256(data).hexdigest(), row
    assert record["files"]["total"] == 500 and record["files"]["transferred"] == 500
    assert tree_command["progress"]["rclone"]["transfers"] == 500

    # Throughput through the portal and agent, against a plain `rclone copy` of the same file.
    agent_seconds = _seconds(big_command["started_at"], big_command["finished_at"])
    env = {"PATH": os.environ["PATH"], "HOME": str(site.scratch.path),
           "RCLONE_S3_ACCESS_KEY_ID": site.s3.access_key, "RCLONE_S3_SECRET_ACCESS_KEY": site.s3.secret_key}
    started = time.monotonic()
    subprocess.run([str(RCLONE), "copy", "--config", os.devnull, "--s3-provider", "Other", "--s3-endpoint",
                    site.s3.endpoint, "--s3-no-check-bucket", str(big), f":s3:{site.bucket}/plain"],
                   env=env, check=True, capture_output=True)
    plain_seconds = time.monotonic() - started
    size_mb = big.stat().st_size / 1e6
    print(f"\nTHROUGHPUT 200 MiB: agent {size_mb / agent_seconds:.0f} MB/s ({agent_seconds:.2f} s, claim to"
          f" report), plain rclone copy {size_mb / plain_seconds:.0f} MB/s ({plain_seconds:.2f} s)")
    assert sha256(site.landed("plain/big.bin")) == sha256(big)
    # The agent adds a claim, a preflight, hashing and reports: it must stay in plain rclone's league.
    assert agent_seconds < plain_seconds * 2.5 + 2, (agent_seconds, plain_seconds)
    assert agent.process.poll() is None


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _seconds(start: str, end: str) -> float:
    return (_time(end) - _time(start)).total_seconds()
