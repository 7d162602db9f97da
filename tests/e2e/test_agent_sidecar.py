"""The agent with rclone as a separate sidecar (the docker compose layout):
it uses the sidecar's rc with the given credentials, and when the agent is
killed mid-transfer the sidecar's job, which lives on, is stopped by the
restarted agent before it resumes."""

from __future__ import annotations

import signal

import pytest

from tests.harness import MiB, sha256, wait_for, write_random

pytestmark = pytest.mark.e2e

FINISHED = ("succeeded", "failed", "canceled")


def test_an_agent_using_a_sidecar_rclone_sends_and_resumes_after_being_killed(site, alice):
    sidecar = site.sidecar()
    big = write_random(site.send_dir / "big.bin", 24 * MiB)

    def agent():
        return site.agent(sidecar=sidecar).start()

    first = agent()
    transfer = site.send(["big.bin"], prefix="sidecar", bandwidth_limit="6M")

    def moving():
        command = alice.latest_command(transfer)
        return command["state"] == "running" and command["progress"].get("bytes", 0) > 0

    wait_for(moving, 30, "bytes to move", 0.1)
    assert first.children() == []  # no rclone of its own
    first.signal(signal.SIGKILL)
    first.wait(10)
    # The sidecar carries on with the orphaned job until someone stops it.
    orphans = [job for job in sidecar.call("job/list")["runningIds"]
               if sidecar.call("job/status", jobid=job).get("group", "").startswith("dtn-")]
    assert len(orphans) == 1

    agent()
    record = alice.wait_state(transfer, FINISHED, timeout=60)
    assert record["state"] == "succeeded", record
    assert sha256(site.landed("sidecar/big.bin")) == sha256(big)
    # The restarted agent stopped the orphan instead of letting two jobs write the same file.
    orphan = sidecar.call("job/status", jobid=orphans[0])
    assert orphan["finished"] and not orphan["success"] and "context canceled" in orphan["error"]
    assert sidecar.call("core/bwlimit")["rate"] == "off"
