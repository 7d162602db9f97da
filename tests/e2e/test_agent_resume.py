"""An agent killed or stopped mid-transfer, then started again with its state
directory, claims its command back and completes it."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.harness import MiB, sha256, wait_for, write_random

pytestmark = pytest.mark.e2e

FINISHED = ("succeeded", "failed", "canceled")


def moving(alice, transfer):
    command = alice.latest_command(transfer)
    return command["state"] == "running" and command["progress"].get("bytes", 0) > 0


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_an_agent_killed_mid_transfer_resumes_it_when_started_again(site, alice):
    big = write_random(site.send_dir / "big.bin", 40 * MiB)
    first = site.agent().start()
    # 40 MiB at 8 MiB/s: about five seconds.
    transfer = site.send(["big.bin"], prefix="resumed", bandwidth_limit="8M")
    wait_for(lambda: moving(alice, transfer), 30, "bytes to move", 0.1)
    rcd = [pid for pid in first.children()]
    assert rcd, "the agent runs its own rclone rcd"

    first.signal(signal.SIGKILL)
    first.wait(10)
    # rclone dies with the agent that started it: no orphan keeps writing.
    wait_for(lambda: all(gone(pid) for pid in rcd), 5, "rclone rcd to die with the agent")
    assert alice.transfer(transfer)["state"] == "active"

    second = site.agent().start()  # the same state dir: the same instance id
    record = alice.wait_state(transfer, FINISHED, timeout=60)
    assert record["state"] == "succeeded", record
    assert sha256(site.landed("resumed/big.bin")) == sha256(big)
    assert record["attempts"] == 1 and len(record["commands"]) == 1
    # The file was cut off mid-way: the restarted agent's rclone sent all of it again.
    assert alice.latest_command(transfer)["progress"]["rclone"]["bytes"] == 40 * MiB
    events = alice.events(transfer)
    resume = [e for e in events if e["kind"] == "resume"]
    assert resume and "sent again from its start" in resume[0]["message"]
    assert "sent again from its start" in second.log()


def test_sigterm_leaves_the_command_running_and_a_restarted_agent_completes_it(site, alice):
    big = write_random(site.send_dir / "big.bin", 40 * MiB)
    first = site.agent().start()
    transfer = site.send(["big.bin"], prefix="termed", bandwidth_limit="8M")
    wait_for(lambda: moving(alice, transfer), 30, "bytes to move", 0.1)

    asked = time.monotonic()
    first.signal(signal.SIGTERM)
    assert first.wait(15) == 0
    assert time.monotonic() - asked < 8
    assert alice.latest_command(transfer)["state"] == "running"
    assert "interrupted" in [e["kind"] for e in alice.events(transfer)]

    site.agent().start()
    record = alice.wait_state(transfer, FINISHED, timeout=60)
    assert record["state"] == "succeeded", record
    assert sha256(site.landed("termed/big.bin")) == sha256(big)


def test_a_revoked_token_ends_the_agent_with_its_own_exit_status(site, alice):
    agent = site.agent().start()
    wait_for(lambda: "running command" in agent.log() or alice.call(
        "GET", f"/api/v1/containers/{site.container['container_id']}")["last_seen_at"], 20, "a heartbeat")
    alice.call("POST", f"/api/v1/containers/{site.container['container_id']}/rotate-token")
    assert agent.wait(60) == 3
    assert "refused the agent token" in agent.log()
    assert os.path.exists(site.scratch / "state" / "instance_id")
