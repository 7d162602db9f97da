"""Issue 28 on the test bed: the sender's namespace tuned exactly as the compose file's tcp-tune service tunes
it (`python -m agent.tcptune --apply`: BBR on its routes, 64 MiB buffer limits), then a transfer over a long
lossy link. The settings must be in effect *during* the transfer (every connection to the receiver seen with
BBR by `ss`), reported in the agent's heartbeat and in the transfer's network check as applied, with no
`sysctl` line left to advise for them. The host's own settings stay as they were.

The bed's namespaces default to cubic (the host's allowed list), so without the tuning every connection
would show cubic and this test would fail."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from tests.faults.conftest import world_in_bed
from tests.harness import MiB, sha256, wait_for, write_random
from tests.netcheck.conftest import World

pytestmark = [pytest.mark.netbed, pytest.mark.e2e]
LOSSY = {"rate_mbit": 200, "rtt_ms": 50, "loss_pct": 0.5}
HOST = Path("/proc/sys/net/ipv4")
CC_NAMES = ("bbr", "cubic", "reno")


@pytest.fixture(scope="module")
def tuned_world():
    host_before = {name: (HOST / name).read_text() for name in ("tcp_congestion_control", "tcp_rmem", "tcp_wmem")}
    for world in world_in_bed(World, "dtn-tcptuned-", **LOSSY):
        said = world.bed.run_python("sender", ["-m", "agent.tcptune", "--apply"], text=True, timeout=60).stdout
        assert re.search(r"congestion control bbr: applied on [1-9]", said), said
        yield world
    assert {name: (HOST / name).read_text() for name in host_before} == host_before


def connections_cc(bed, wan: str) -> list[str]:
    """The congestion control of each TCP connection from the sender's namespace to the receiver now."""
    out = bed.run("sender", ["ss", "-tin", "dst", wan], text=True, timeout=10).stdout
    names = []
    for line in out.splitlines():
        if line[:1].isspace():
            found = [word for word in line.split() if word in CC_NAMES]
            names.extend(found[:1])
    return names


def test_the_tuning_is_in_effect_during_a_transfer_and_reported_applied(tuned_world):
    world = tuned_world
    sender_id = world.sender["container_id"]
    reported = []

    def bbr_reported():
        reported.append(world.alice.call("GET", f"/api/v1/containers/{sender_id}")["tcp"])
        return reported[-1] if reported[-1] and reported[-1]["congestion_control"] == "bbr" else None

    try:
        tcp = wait_for(bbr_reported, 60, "the heartbeat to report BBR", 0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: last reported {reported[-1]}; routes:\n"
                             f"{world.bed.ip('sender', 'route').stdout}{world.bed.ip('sender', '-6', 'route').stdout}")
    assert tcp["tuned"] == {"congestion_control": True, "tcp_rmem": True, "tcp_wmem": True}
    assert tcp["buffer_limit_bytes"] == 64 * MiB

    source = world.send_dir / "tuned.bin"
    write_random(source, 48 * MiB)
    seen: list[str] = []
    done = threading.Event()

    def watch():
        while not done.is_set():
            seen.extend(connections_cc(world.bed, world.wan))
            done.wait(0.3)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        transfer = world.send(["tuned.bin"], prefix="tuned")
        record = world.alice.wait_state(transfer, ("succeeded", "failed", "canceled"), timeout=240)
    finally:
        done.set()
        watcher.join(15)
    assert record["state"] == "succeeded", record.get("fatal_error")
    assert sha256(world.receive_dir / world.grant["bucket"] / "tuned" / "tuned.bin") == sha256(source)
    # Every connection seen while it ran (the check's probe and rclone's uploads) went with BBR.
    assert seen and set(seen) == {"bbr"}, sorted(set(seen))
    tuning = record["network_check"]["tcp_tuning"]
    assert tuning["in_effect"]["congestion_control"] == "bbr" and tuning["in_effect"]["from"] == "routes"
    assert [sentence.split(" ")[0] for sentence in tuning["applied"]] == ["BBR", "TCP"], tuning
    assert tuning["advised"] == [], tuning
    advice = record["network_check"]["advice"]
    assert advice[0].startswith("Applied: BBR") and not any("sysctl" in a for a in advice), advice
