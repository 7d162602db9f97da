"""The sender agent's memory from one transfer to the next (issue 22): one agent process, a real
portal, its own rclone rcd and a real S3 server over TLS holding a grant (the certificate pinned, the
receiver's SHA-256s asked for through the side channel), 30 small transfers one after another. Its
peak RSS must not grow with the number of transfers it has run."""

from __future__ import annotations

import os

import pytest

from tests.e2e.test_agent_tls import FINISHED, ReceiverSideChannel, check_in, receiver_with_grant, send_to
from tests.harness import memory_mib, wait_for

pytestmark = pytest.mark.e2e

TRANSFERS = 30
FILES = 200
FLAT_MIB = 3.0


def test_thirty_transfers_through_one_agent_leave_its_peak_rss_flat(site, alice):
    receiver, grant, server, certificate = receiver_with_grant(site, alice, site.scratch / "tls")
    check_in(site, receiver, grant, server.endpoint, certificate)
    for i in range(TRANSFERS):
        for j in range(FILES):
            path = site.send_dir / f"batch-{i}" / f"sub-{j % 4}" / f"file-{j}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(os.urandom(200 + 97 * j))
    agent = site.agent().start()
    peaks, currents = [], []
    with ReceiverSideChannel(site, receiver["agent_token"]):
        for i in range(TRANSFERS):
            transfer = send_to(alice, site, receiver["container_id"], [f"batch-{i}"], prefix=f"run-{i}")
            record = alice.wait_state(transfer, FINISHED, timeout=120)
            assert record["state"] == "succeeded" and record["files"]["verified"] == FILES, record
            # The transfer is over once the command is: the agent is back in its claim.
            wait_for(lambda: alice.latest_command(transfer)["state"] == "succeeded", 30, "the command to end", 0.2)
            memory = memory_mib(agent.pid)
            peaks.append(round(memory["VmHWM"], 1))
            currents.append(round(memory["VmRSS"], 1))
    print(f"\nAGENT RSS over {TRANSFERS} transfers, MiB: peak {peaks}\ncurrent {currents}")
    assert agent.process.poll() is None
    # After the second transfer (imports done, the first network check, TLS and S3 clients made once) the
    # peak stays within a few MiB.
    assert peaks[-1] - peaks[1] <= FLAT_MIB, (peaks, currents)
