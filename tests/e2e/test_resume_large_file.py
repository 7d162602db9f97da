"""Issue 20: a restart inside a large file costs only the parts that did not land, measured at the receiver.

Real processes: the session's portal, Bob's receiver agent (TLS, one `rclone serve s3` on one port, a grant
to Alice) and, per case, a fresh sender container of Alice's with its agent. One 2 GiB random file
(above the sender's resume cutoff, `DTN_RESUME_CUTOFF_MIB`, 256 by default, left at the default here).

Every byte count is what the receiver's S3 port received, counted by the kernel (tests/harness/received.py),
never the product's counters; the interruption is driven off that count too. Each case asserts:

- the interruption happened between 35% and 65% of the file, as received;
- a restart re-sent at most 60% of the file (issue 20's bound; TLS framing, HTTP and the restart's listing
  count against it);
- the landed file is byte-identical (SHA-256), the transfer `succeeded`, its file verified by the receiver;
- nothing is left in the receiver's receive folder but the landed file: no `.rclone_temp_*` anywhere, no
  part files.

Cases: a user stop at ~50% then the portal's restart; the sender agent SIGKILLed at ~50% and started again
with the same state dir; the receiver's serve s3 SIGKILLed at ~50% (the receiver agent starts it again;
serve s3 keeps uploads in memory, so the file starts again from 0: only success, identity and no leftovers
are asserted, and the re-sent fraction is printed); and a plain 2 GiB transfer, which leaves nothing behind.

Every transfer skips the network check: its probe's uploads would be counted at the receiver."""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.harness import Agent, Person, Received, Scratch, sha256, wait_for, write_random
from tests.harness.received import available
from tests.tools.net import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(available() is not None, reason=available() or "")]

GiB = 2**30
SIZE = 2 * GiB
NAME = "big.bin"
# Where the interruption must fall, as a fraction of the file received, and the most a restart may re-send.
LOW, HIGH = 0.35, 0.65
MAX_RESENT = 0.60
TEMP = ".rclone_temp_"
FINISHED = ("succeeded", "failed", "canceled")
_senders = itertools.count(1)


class World:
    """The file, Bob's receiver agent serving a grant to Alice, and the count at its S3 port."""

    def __init__(self, portal, alice: Person, scratch: Scratch):
        self.portal, self.alice, self.scratch = portal, alice, scratch
        self.send_dir = scratch / "send"
        self.receive_dir = scratch / "received"
        self.logs = scratch / "logs"
        for folder in (self.send_dir, self.receive_dir, self.logs):
            folder.mkdir()
        started = time.monotonic()
        write_random(self.send_dir / NAME, SIZE)
        self.digest = sha256(self.send_dir / NAME)
        print(f"\n{NAME}: {SIZE / GiB:.0f} GiB written and hashed in {time.monotonic() - started:.1f} s")
        self.bob = Person(portal.url, f"bob-resume-{secrets.token_hex(3)}")
        self.box = self.bob.register("bob-resume-receiver", role="receiver")
        self.port = free_port()
        self.receiver = Agent(portal.url, self.box["agent_token"], None, scratch / "rx-state", self.logs,
                              DTN_RECEIVE_DIR=str(self.receive_dir), DTN_RECEIVER_HOST="127.0.0.1",
                              DTN_RECEIVER_PORT=str(self.port)).start()
        self.grant = self.bob.call("POST", "/api/v1/grants", 201, json={"grantee": alice.username,
                                                                        "receiver": self.box["container_id"]})
        wait_for(self.serving, 60, "Bob's receiver to serve the grant over TLS", 0.3)
        self.bucket_dir = self.receive_dir / self.grant["bucket"]
        self.received = Received(self.port)
        self.senders: list[Agent] = []

    def serving(self) -> bool:
        row = self.bob.call("GET", f"/api/v1/containers/{self.box['container_id']}")
        given = {g["grant_id"]: g for g in self.bob.call("GET", "/api/v1/grants")["given"]}
        return row["online"] and row["endpoint"].startswith("https://") and \
            given[self.grant["grant_id"]]["served"] == "ok"

    def sender(self, **env) -> tuple[dict, Agent]:
        """A fresh sender container of Alice's and its agent (its own state dir), started."""
        number = next(_senders)
        box = self.alice.register(f"resume-sender-{number}")
        agent = Agent(self.portal.url, box["agent_token"], self.send_dir, self.scratch / f"tx-state-{number}",
                      self.logs, **env).start()
        self.senders.append(agent)
        return box, agent

    def send(self, box: dict, prefix: str, **options) -> str:
        return self.alice.call("POST", "/api/v1/transfers", 201, json={
            "sender": box["container_id"], "receiver": self.box["container_id"], "sources": [NAME],
            "prefix": prefix, "label": prefix, "network_check": "skip", **options})["transfer_id"]

    def landed(self, prefix: str) -> Path:
        return self.bucket_dir / prefix / NAME

    def files(self) -> list[str]:
        """Every file under the receive folder, hidden ones too, relative to it."""
        return sorted(p.relative_to(self.receive_dir).as_posix() for p in self.receive_dir.rglob("*")
                      if p.is_file() or p.is_symlink())

    def serve_s3(self) -> list[int]:
        return [pid for pid, cmd in self.receiver.descendants() if " serve s3 " in f" {cmd} "]

    def clear(self) -> None:
        """Each case starts with an empty receive folder (and 2 GiB of disk back)."""
        if self.bucket_dir.exists():
            for child in self.bucket_dir.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)

    def close(self) -> None:
        self.received.stop()
        for agent in [*self.senders, self.receiver]:
            agent.stop()


@pytest.fixture(scope="module")
def world(portal, alice):
    scratch = Scratch("dtn-resume-large-")
    made = None
    try:
        made = World(portal, alice, scratch)
        yield made
    finally:
        if made is not None:
            made.close()
        scratch.remove()


@pytest.fixture
def case(world):
    world.clear()
    started = time.monotonic()
    yield world
    for agent in [*world.senders, world.receiver]:
        text = agent.log()
        if text:
            print(f"--- {agent.log_path.name} (last lines) ---")
            print("\n".join(line for line in text.splitlines()[-40:] if "progress report" not in line))
    served = world.scratch / "rx-state" / "receiver" / "logs" / "s3.log"
    if served.exists():
        print("--- the receiver's serve s3 log (last lines) ---")
        print("\n".join(served.read_text(errors="replace").splitlines()[-20:]))
    print(f"case took {time.monotonic() - started:.1f} s")
    for agent in world.senders:
        agent.stop()
    world.senders.clear()
    world.clear()


def at_fraction(world: World, base: int, fraction: float, transfer: str, timeout: float = 120) -> int:
    """Wait until the receiver has received `fraction` of the file since `base`; the count then."""
    checked = [time.monotonic()]

    def reached():
        got = world.received.poll() - base
        if got >= fraction * SIZE:
            return got
        if time.monotonic() - checked[0] > 1:
            checked[0] = time.monotonic()
            record = world.alice.transfer(transfer)
            assert record["state"] not in FINISHED, f"the transfer ended before the interruption: {record}"
        return None

    return wait_for(reached, timeout, f"the receiver to receive {fraction:.0%} of {NAME}", 0.02)


def finished(world: World, transfer: str) -> dict:
    return world.alice.wait_state(transfer, FINISHED, timeout=240)


def landed_whole(world: World, transfer: str, prefix: str, record: dict | None = None) -> dict:
    """The transfer succeeded, its file verified by the receiver, the landed file the sender's."""
    record = record or finished(world, transfer)
    assert record["state"] == "succeeded", record
    assert record["files"]["verified"] == 1, record["files"]
    row = world.alice.files(transfer)[NAME]
    assert row["sha256"] == row["receiver_sha256"] == world.digest, row
    assert sha256(world.landed(prefix)) == world.digest
    return record


def nothing_left_behind(world: World, prefix: str) -> None:
    files = world.files()
    temps = [f for f in files if f.rsplit("/", 1)[-1].startswith(TEMP)]
    assert not temps, f"serve s3's temp files left in the receive folder: {temps}"
    assert files == [f"{world.grant['bucket']}/{prefix}/{NAME}"], f"more than the landed file: {files}"


def report(case_name: str, before: int, resent: int, started: float, **extra) -> None:
    print(f"\nresume {case_name}: interrupted at {before / SIZE:.1%} of the file as received "
          f"({before / 2**20:.0f} MiB), the restart re-sent {resent / SIZE:.1%} ({resent / 2**20:.0f} MiB),"
          f" {time.monotonic() - started:.1f} s in all"
          + "".join(f", {key} {value}" for key, value in extra.items()))


def check_interrupted_at(before: int) -> None:
    assert LOW * SIZE <= before <= HIGH * SIZE, \
        f"interrupted at {before / SIZE:.1%} of the file, not between {LOW:.0%} and {HIGH:.0%}"


def check_resent(resent: int) -> None:
    assert resent <= MAX_RESENT * SIZE, \
        f"the restart re-sent {resent / SIZE:.1%} of the file ({resent} bytes): more than {MAX_RESENT:.0%}"


@pytest.mark.timeout(150)
def test_a_plain_two_gib_transfer_lands_whole_and_leaves_nothing_behind(case):
    world = case
    box, _ = world.sender()
    started = time.monotonic()
    base = world.received.poll()
    transfer = world.send(box, "plain")
    landed_whole(world, transfer, "plain")
    got = world.received.settled(0.5) - base
    print(f"\nplain: received {got / SIZE:.3f} x the file in {time.monotonic() - started:.1f} s")
    assert SIZE <= got <= 1.05 * SIZE, got
    nothing_left_behind(world, "plain")


# A stop reaches the sender's jobs within seconds (test_agent_stop_restart): asked at 45% of the file as received,
# today's stop landed at 45.6%; asked at 48%, at 49.0-50.5%.
STOP_AT = 0.48


@pytest.mark.timeout(200)
def test_a_user_stop_at_half_then_a_restart_re_sends_at_most_60_percent(case):
    world = case
    box, _ = world.sender()
    started = time.monotonic()
    base = world.received.poll()
    transfer = world.send(box, "stopped")
    at_fraction(world, base, STOP_AT, transfer)
    world.alice.stop(transfer)
    world.alice.wait_state(transfer, "canceled", timeout=30)
    before = world.received.settled() - base
    check_interrupted_at(before)

    mark = world.received.poll()
    world.alice.restart(transfer)
    record = finished(world, transfer)
    resent = world.received.settled(0.5) - mark
    report("after a user stop", before, resent, started, state=record["state"])
    check_resent(resent)
    landed_whole(world, transfer, "stopped", record)
    nothing_left_behind(world, "stopped")


@pytest.mark.timeout(200)
def test_the_sender_agent_sigkilled_at_half_and_started_again_re_sends_at_most_60_percent(case):
    world = case
    box, agent = world.sender()
    started = time.monotonic()
    base = world.received.poll()
    transfer = world.send(box, "killed")
    at_fraction(world, base, 0.5, transfer)
    agent.signal(signal.SIGKILL)
    agent.wait(10)
    before = world.received.settled() - base
    check_interrupted_at(before)
    assert world.alice.transfer(transfer)["state"] == "active"

    mark = world.received.poll()
    agent.start()  # the same state dir: the same instance, which claims its command back
    record = finished(world, transfer)
    resent = world.received.settled(0.5) - mark
    report("after the sender agent was SIGKILLed", before, resent, started, state=record["state"],
           attempts=record["attempts"])
    check_resent(resent)
    landed_whole(world, transfer, "killed", record)
    nothing_left_behind(world, "killed")


# The transfer's bandwidth limit for the limit case, in MiB/s (rclone's "32M"): well under what this machine
# sends unlimited (~70-110 MiB/s here), so a large file's upload that ignored it would show.
LIMIT_MIB = 32


@pytest.mark.timeout(120)
def test_a_large_files_upload_keeps_the_bandwidth_limit_and_a_stop_ends_it(case):
    """The transfer's bandwidth limit holds for a file above the resume cutoff (the sender's own multipart
    upload must pace itself as rclone's jobs are paced), measured over 5 s at the receiver; and a stop ends
    the sending: once the transfer is canceled nothing more reaches the receiver (but the receiver agent's
    own health check, a few hundred bytes per heartbeat)."""
    world = case
    box, _ = world.sender()
    base = world.received.poll()
    transfer = world.send(box, "limited", bandwidth_limit=f"{LIMIT_MIB}M")
    at_fraction(world, base, 0.02, transfer)
    first, counted = time.monotonic(), world.received.poll()
    time.sleep(5)
    rate = (world.received.poll() - counted) / (time.monotonic() - first) / 2**20
    world.alice.stop(transfer)
    world.alice.wait_state(transfer, "canceled", timeout=30)
    stopped = world.received.settled()
    time.sleep(3)
    later = world.received.poll() - stopped
    print(f"\nbandwidth limit {LIMIT_MIB} MiB/s: the receiver received {rate:.1f} MiB/s over 5 s;"
          f" {later} bytes in the 3 s after the stop settled")
    assert rate <= LIMIT_MIB * 1.1, f"{rate:.1f} MiB/s received under a limit of {LIMIT_MIB} MiB/s"
    assert rate >= LIMIT_MIB * 0.3, f"only {rate:.1f} MiB/s under a limit of {LIMIT_MIB} MiB/s"
    assert later < 64 * 1024, f"{later} bytes reached the receiver after the stop"


@pytest.mark.timeout(240)
def test_the_receivers_s3_server_sigkilled_at_half_starts_the_file_again_and_leaves_nothing_behind(case):
    """serve s3 keeps multipart uploads in memory: the one restarted by the receiver agent answers
    `NoSuchUpload`, and the file is sent again from byte 0 (docs/agent.md). The receiver agent deletes the
    killed server's `.rclone_temp_*` when it starts the new one. If the sender gave up while the server was
    down, the transfer is restarted as a person would; either way it ends succeeded, identical, with
    nothing left behind. The re-sent fraction is printed, not bounded."""
    world = case
    box, _ = world.sender()
    started = time.monotonic()
    base = world.received.poll()
    transfer = world.send(box, "rx-restart")
    at_fraction(world, base, 0.5, transfer)
    [old] = world.serve_s3()
    os.kill(old, signal.SIGKILL)
    before = world.received.poll() - base
    check_interrupted_at(before)
    mark = world.received.poll()
    wait_for(lambda: [pid for pid in world.serve_s3() if pid != old], 30,
             "the receiver agent to start its S3 server again", 0.2)

    record = finished(world, transfer)
    restarted = record["state"] == "failed"
    if restarted:
        print(f"the transfer failed: {record.get('fatal_error')}; restarted, as a person would")
        world.alice.restart(transfer)
        record = finished(world, transfer)
    resent = world.received.settled(0.5) - mark
    report("after the receiver's serve s3 was SIGKILLed", before, resent, started, state=record["state"],
           restarted_by_hand=restarted)
    # Leftovers first: the killed server's temp file is what the receiver agent must sweep.
    if record["state"] == "succeeded":
        nothing_left_behind(world, "rx-restart")
    else:
        temps = [f for f in world.files() if f.rsplit("/", 1)[-1].startswith(TEMP)]
        print(f"temp files in the receive folder after the failure: {temps}")
    landed_whole(world, transfer, "rx-restart", record)
