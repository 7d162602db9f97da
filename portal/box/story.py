"""The user story of DEVELOPERS.md, on this machine: Alice and Bob sign up, each
starts a box, Bob grants Alice, Alice sends a dataset by Bob's container ID and
watches it, and the files land byte-identical in Bob's receive folder."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from dtn_protocol.states import FINISHED_TRANSFER_STATES as FINISHED, TransferState
from dtn_protocol.units import human_bytes, human_speed
from portal.box.client import PortalAPI
from portal.box.processes import BoxError, Processes, portal_env, start_agent, start_portal

BIG_FILE_MIB = 200
SMALL_FILES = 520


@dataclass
class Box:
    """What a finished set-up leaves running and where."""

    url: str
    root: Path
    alice: PortalAPI
    bob: PortalAPI
    alice_box: dict
    bob_box: dict
    grant: dict
    passwords: dict


def free_port(preferred: int | None = None) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred or 0))
        except OSError:
            if preferred is None:
                raise
            sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def say(message: str) -> None:
    print(message, flush=True)


def make_dataset(send_dir: Path) -> None:
    """One 200 MiB file and 520 small files in nested folders, like an instrument's run."""
    big = send_dir / "run-0042" / "detector-raw.bin"
    big.parent.mkdir(parents=True, exist_ok=True)
    with open(big, "wb") as handle:
        for _ in range(BIG_FILE_MIB):
            handle.write(os.urandom(2**20))
    for index in range(SMALL_FILES):
        folder = send_dir / "run-0042" / "frames" / f"plate {index // 100:02d}" / f"well-{index % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"frame-{index:04d}.tif").write_bytes(os.urandom(512 + (index * 97) % 8192))


def make_folders(root: Path) -> None:
    """The box's folders, afresh, for this user only (the processes' files are too: PRIVATE_UMASK)."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, mode=0o700)
    for name in ("portal", "logs", "alice-send", "bob-received", "alice-agent", "bob-agent"):
        (root / name).mkdir(mode=0o700)


def set_up(processes: Processes, root: Path, port: int) -> Box:
    make_folders(root)
    processes.log_dir = root / "logs"
    url = f"http://127.0.0.1:{port}"

    say(f"• Portal: starting at {url} (SQLite in {root / 'portal'}; notification mails as files in {root / 'mail'})")
    # Quick heartbeats: the box's receiver serves a new grant within seconds. Mails
    # become files a person can open; webhooks may go to a receiver on this machine.
    start_portal(processes, portal_env(root / "portal", port, DTN_HEARTBEAT_SECONDS="3", DTN_EMAIL_BACKEND="file",
                                       DTN_EMAIL_FILE_PATH=str(root / "mail"), DTN_WEBHOOK_ALLOW_PRIVATE="true"),
                 url)

    passwords = {name: secrets.token_urlsafe(12) for name in ("alice", "bob")}
    alice = PortalAPI.sign_up(url, "alice", passwords["alice"], "alice@example.org")
    bob = PortalAPI.sign_up(url, "bob", passwords["bob"], "bob@example.org")
    say("• Alice and Bob signed up")
    bob_box = bob.register("bob-receiver", "receiver")
    alice_box = alice.register("alice-sender", "sender")
    say(f"• Bob's receiver registered: container ID {bob_box['container_id']}")
    say(f"• Alice's sender registered: container ID {alice_box['container_id']}")
    grant = bob.grant("alice", bob_box["container_id"])
    say(f"• Bob granted Alice: bucket {grant['bucket']} in Bob's receive folder")

    start_agent(processes, "bob-agent", url, bob_box["agent_token"], root / "bob-agent",
                DTN_RECEIVE_DIR=str(root / "bob-received"), DTN_RECEIVER_HOST="127.0.0.1",
                DTN_RECEIVER_PORT=str(free_port()))
    start_agent(processes, "alice-agent", url, alice_box["agent_token"], root / "alice-agent",
                DTN_SEND_DIR=str(root / "alice-send"))
    wait_for_grant(processes, bob, grant["grant_id"])
    box = bob.container(bob_box["container_id"])
    say(f"• Bob's receiver is online, serving S3 over TLS at {granted_endpoint(bob, grant['grant_id'])}")
    say(f"  (certificate pinned by the portal, SHA-256 {_cert_fingerprint(root)[:23]}…; {box['endpoint']})")
    return Box(url, root, alice, bob, alice_box, bob_box, grant, passwords)


def granted_endpoint(bob: PortalAPI, grant_id: str) -> str:
    """The receiver's address once it says it serves the grant; empty before."""
    return next((g["endpoint"] for g in bob.grants_given() if g["grant_id"] == grant_id and g["served"] == "ok"), "")


def wait_for_grant(processes: Processes, bob: PortalAPI, grant_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        processes.check_alive()
        if granted_endpoint(bob, grant_id):
            return
        time.sleep(0.3)
    raise BoxError(f"Bob's receiver did not start serving the grant within {timeout:.0f} s;"
                   f" see {processes.log_dir}/bob-agent.log")


def _cert_fingerprint(root: Path) -> str:
    from portal.lib.certificates import fingerprint

    return fingerprint((root / "bob-agent" / "tls" / "s3.crt").read_text())


def progress_line(status: dict) -> str:
    total = status["bytes"]["total"] or 0
    # Done is sent + already there, each byte once: the figure the pages and `dtn` show.
    done = (status["bytes"]["transferred"] or 0) + (status["bytes"]["skipped"] or 0)
    share = done / total if total else 0.0
    bar = "#" * int(share * 30)
    speed = status.get("speed") or 0
    eta = status.get("eta")
    files = status["files"]
    return (f"  [{bar:<30}] {share * 100:5.1f}%  {human_bytes(done)} / {human_bytes(total)}"
            f"  {human_speed(speed)}  ETA {eta if eta is not None else '?'} s"
            f"  files {files['transferred'] + files['skipped']}/{files['total']}  {status['state']}")


def watch(processes: Processes, alice: PortalAPI, transfer_id: str, timeout: float = 900) -> dict:
    """Alice watches: a live line with speed, ETA and progress until the transfer ends."""
    interactive = sys.stdout.isatty()
    deadline = time.monotonic() + timeout
    last_printed = 0.0
    while time.monotonic() < deadline:
        processes.check_alive()
        status = alice.status(transfer_id)
        line = progress_line(status)
        if interactive:
            print("\r" + line, end="", flush=True)
        elif time.monotonic() - last_printed >= 2 or status["state"] in FINISHED:
            print(line, flush=True)
            last_printed = time.monotonic()
        if status["state"] in FINISHED:
            if interactive:
                print()
            return alice.transfer(transfer_id)
        time.sleep(0.5)
    raise BoxError(f"the transfer did not finish within {timeout:.0f} s")


def sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def compare_folders(send_dir: Path, landed_dir: Path) -> tuple[int, int, list[str]]:
    """(files, bytes, differences) between what Alice has and what landed at Bob's."""
    differences, files, size = [], 0, 0
    for source in sorted(p for p in send_dir.rglob("*") if p.is_file()):
        rel = source.relative_to(send_dir).as_posix()
        landed = landed_dir / rel
        files += 1
        size += source.stat().st_size
        if not landed.is_file():
            differences.append(f"missing at Bob's: {rel}")
        elif sha256(landed) != sha256(source):
            differences.append(f"differs at Bob's: {rel}")
    extra = {p.relative_to(landed_dir).as_posix() for p in landed_dir.rglob("*") if p.is_file()} - {
        p.relative_to(send_dir).as_posix() for p in send_dir.rglob("*") if p.is_file()}
    differences += [f"unexpected at Bob's: {rel}" for rel in sorted(extra)]
    return files, size, differences


def _sent_seconds(person, transfer_id) -> str:
    """What the agent measured against the prediction (its `performance` event)."""
    event = next((e for e in person.events(transfer_id)
                  if e["kind"] == "performance"), None)
    return event["message"].split(";")[0].replace("sent ", "") if event else "(not measured)"


def send_and_verify(processes: Processes, box: Box) -> int:
    send_dir = box.root / "alice-send"
    say(f"• Making Alice's dataset: one {BIG_FILE_MIB} MiB file and {SMALL_FILES} small files in nested folders")
    make_dataset(send_dir)
    started = time.monotonic()
    transfer = box.alice.send(sender=box.alice_box["container_id"], receiver=box.bob_box["container_id"],
                              sources=["run-0042"], prefix="from-alice", label="run 0042")
    say(f"• Alice sent run-0042 to Bob's container {box.bob_box['container_id']} (transfer {transfer['transfer_id']})")
    record = watch(processes, box.alice, transfer["transfer_id"])
    wall = time.monotonic() - started
    if record["state"] != TransferState.SUCCEEDED:
        error = record.get("fatal_error") or {}
        say(f"✗ The transfer {record['state']}: {error.get('reason', '')} {error.get('message', '')}")
        return 1

    landed = box.root / "bob-received" / box.grant["bucket"] / "from-alice"
    files, size, differences = compare_folders(send_dir, landed)
    manifest = box.alice.manifest(transfer["transfer_id"])
    both_hashes = sum(1 for row in manifest if row["sha256"] and row["sha256"] == row["receiver_sha256"])
    say("")
    say("Summary")
    say(f"  files          {files} ({record['files']['transferred']} sent, {record['files']['skipped']} skipped)")
    say(f"  bytes          {human_bytes(size)} ({size} B)")
    say(f"  speed          {human_speed(record.get('effective_speed') or 0)} effective (portal);"
        f" {human_speed(size / wall)} from send to verified")
    say(f"  wall time      {wall:.1f} s from send to verified success")
    say(f"  verification   {both_hashes}/{files} files with the sender's SHA-256 equal to the receiver's"
        f" (portal: {record['files']['verified']} verified)")
    check = record.get("network_check") or {}
    if check:
        predicted = check.get("predicted_seconds")
        say(f"  network check  {check.get('verdict')}: RTT {((check.get('rtt_ms') or {}).get('median') or 0):.1f} ms,"
            f" probe {human_speed((check.get('probe') or {}).get('parallel_bytes_per_s') or 0)};"
            f" predicted {predicted:.1f} s for the data, took {_sent_seconds(box.alice, transfer['transfer_id'])}"
            if predicted is not None else f"  network check  {check.get('verdict')}: {check.get('summary')}")
        for reason in check.get("reasons") or []:
            say(f"                 {reason['level']}: {reason['message']}")
        tuning = check.get("tuning") or {}
        if tuning:
            say(f"                 tuning: {tuning.get('transfers')} files at once, {tuning.get('upload_concurrency')}"
                f" parts at once of {(tuning.get('chunk_size') or 0) // 2**20} MiB")
        for advice in check.get("advice") or []:
            say(f"                 advice: {advice}")
    say(f"  Bob's folder   {landed}")
    if differences or both_hashes != files:
        for line in differences[:20]:
            say(f"  ✗ {line}")
        say("✗ Bob's receive folder does not hold byte-identical files")
        return 1
    say(f"✓ Every file in Bob's receive folder is byte-identical to Alice's ({files} files compared)")
    return 0
