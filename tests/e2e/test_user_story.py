"""The user story, on 127.0.0.1 with real processes and the portal's API only.

Alice and Bob sign up and register their boxes; Bob grants Alice; Bob's receiver
agent comes online with TLS and serves the grant; Alice sends a file and a
directory by Bob's container ID; every file lands byte-identical in Bob's receive
folder with both SHA-256s recorded. Then the grant is revoked, and the S3 server
refuses Alice's key within 30 s."""

from __future__ import annotations

import io
import os
import signal
import time
from pathlib import Path

import pytest
import requests
import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error

from tests.harness import Agent, Person, Scratch, sha256, wait_for, write_random
from tests.tools.net import free_port

pytestmark = pytest.mark.e2e


def make_dataset(send_dir: Path) -> dict[str, str]:
    """One larger file and a nested folder of small ones, names with spaces and non-ASCII."""
    write_random(send_dir / "run-17.bin", 48 * 2**20)
    for index in range(60):
        folder = send_dir / "frames" / f"séance {index % 4}" / ("deep dir" if index % 3 else "")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"frame {index:03d} ü.dat").write_bytes(os.urandom(1024 + index * 37))
    return {p.relative_to(send_dir).as_posix(): sha256(p) for p in send_dir.rglob("*") if p.is_file()}


@pytest.fixture
def story(portal):
    scratch = Scratch("dtn-story-")
    agents = []
    try:
        yield portal, scratch, agents
    finally:
        for agent in agents:
            agent.stop()
        scratch.remove()


def set_up(story, who: str):
    """Both boxes registered and running, Bob's grant to Alice served over TLS."""
    portal, scratch, agents = story
    alice, bob = Person(portal.url, f"alice-{who}"), Person(portal.url, f"bob-{who}")
    bob_box = bob.register("bob-receiver", role="receiver")
    alice_box = alice.register("alice-sender", role="sender")
    grant = bob.call("POST", "/api/v1/grants", 201,
                     json={"grantee": alice.username, "receiver": bob_box["container_id"]})

    receive_dir, send_dir = scratch / "bob-received", scratch / "alice-data"
    receive_dir.mkdir()
    send_dir.mkdir()
    expected = make_dataset(send_dir)
    first_port = free_port()
    agents.append(Agent(portal.url, bob_box["agent_token"], None, scratch / "bob-state", scratch.path,
                        DTN_RECEIVE_DIR=str(receive_dir), DTN_RECEIVER_HOST="127.0.0.1",
                        DTN_RECEIVER_PORT=str(first_port)).start())
    agents.append(Agent(portal.url, alice_box["agent_token"], send_dir, scratch / "alice-state",
                        scratch.path).start())

    # Bob's receiver comes online with TLS and serves the grant.
    def served():
        box = bob.call("GET", f"/api/v1/containers/{bob_box['container_id']}")
        ready = box["online"] and box["endpoint"].startswith("https://")
        return box if ready and grant_endpoint(bob, grant["grant_id"]) else None

    wait_for(served, 30, "Bob's receiver to come online with TLS and serve the grant")
    return alice, bob, alice_box, bob_box, grant, receive_dir, expected


def send(alice, alice_box, bob_box) -> str:
    return alice.call("POST", "/api/v1/transfers", 201, json={
        "sender": alice_box["container_id"], "receiver": bob_box["container_id"],
        "sources": ["run-17.bin", "frames"], "prefix": "from-alice", "label": "run 17"})["transfer_id"]


def test_alice_sends_to_bob_by_container_id_and_it_lands_byte_identical(story):
    portal, scratch, agents = story
    alice, bob, alice_box, bob_box, grant, receive_dir, expected = set_up(story, "story")
    certificate_pem = (scratch / "bob-state" / "tls" / "s3.crt").read_text()

    transfer_id = send(alice, alice_box, bob_box)
    record = alice.wait_state(transfer_id, ("succeeded", "failed", "canceled"), timeout=120)
    assert record["state"] == "succeeded", (record, agents[0].log()[-3000:], agents[1].log()[-3000:])

    # Every file sits byte-identical in Bob's folder, under the grant's bucket.
    landed_root = receive_dir / grant["bucket"] / "from-alice"
    landed = {p.relative_to(landed_root).as_posix(): sha256(p) for p in landed_root.rglob("*") if p.is_file()}
    assert landed == expected
    # Both hashes recorded, and equal, for every file.
    files = alice.files(transfer_id)
    assert set(files) == set(expected)
    for path, row in files.items():
        assert row["sha256"] == expected[path]
        assert row["receiver_sha256"] == expected[path]
    assert record["files"]["verified"] == len(expected)
    # Alice's agent reached Bob's receiver over TLS with the pinned certificate only.
    pinned = [e["message"] for e in alice.events(transfer_id) if e["kind"] == "tls"]
    assert pinned and "presents the pinned certificate" in pinned[0]

    # Revoked: the receiver stops serving that key within 30 s.
    endpoint = grant_endpoint(bob, grant["grant_id"])
    keys = grant_keys(portal.url, bob_box["agent_token"], grant["grant_id"])
    client = minio_client(endpoint, *keys, certificate_pem, scratch)
    client.put_object(grant["bucket"], "before-revoke.txt", io.BytesIO(b"ok"), 2)
    bob.call("POST", f"/api/v1/grants/{grant['grant_id']}/revoke")
    revoked_at = time.monotonic()

    def refused(key="during-revoke.txt"):
        try:
            client.put_object(grant["bucket"], key, io.BytesIO(b"no"), 2)
        except (S3Error, InvalidResponseError, urllib3.exceptions.HTTPError):
            return True
        return False

    wait_for(refused, 30, "the revoked grant's key to be refused")
    assert time.monotonic() - revoked_at < 30
    # Refused for good, and nothing written; what came before stays.
    assert refused("after-revoke.txt")
    assert not (receive_dir / grant["bucket"] / "after-revoke.txt").exists()
    assert (receive_dir / grant["bucket"] / "before-revoke.txt").read_bytes() == b"ok"


def grant_endpoint(bob: Person, grant_id: str) -> str:
    """The receiver's address once its agent says it serves the grant; empty before."""
    for row in bob.call("GET", "/api/v1/grants")["given"]:
        if row["grant_id"] == grant_id:
            return row["endpoint"] if row["served"] == "ok" else ""
    raise AssertionError("grant not listed")


def grant_keys(portal_url: str, receiver_token: str, grant_id: str) -> tuple[str, str]:
    """The grant's keys, as the receiver agent itself gets them: what a sender with that grant holds."""
    response = requests.get(f"{portal_url}/api/agent/v1/grants", timeout=30,
                            headers={"Authorization": f"Bearer {receiver_token}"})
    assert response.status_code == 200, response.text
    grant = next(g for g in response.json()["grants"] if g["grant_id"] == grant_id)
    return grant["access_key"], grant["secret_key"]


def minio_client(endpoint: str, access: str, secret: str, certificate_pem: str, scratch: Scratch) -> Minio:
    ca = scratch / "bob-ca.pem"
    ca.write_text(certificate_pem)
    host = endpoint.split("://", 1)[1]
    pool = urllib3.PoolManager(ca_certs=str(ca), retries=urllib3.Retry(total=0), timeout=5)
    return Minio(host, access_key=access, secret_key=secret, secure=True, http_client=pool)


def test_a_byte_flipped_in_bobs_folder_before_verification_fails_naming_that_file(story):
    _, _, agents = story
    alice, bob, alice_box, bob_box, grant, receive_dir, expected = set_up(story, "flip")
    receiver = agents[0]
    # Bob's agent pauses; its S3 server is a process of its own and keeps receiving. It asks the agent
    # for a key it does not know yet, and keeps the answer 5 minutes: so Alice's key is used once first.
    keys = grant_keys(story[0].url, bob_box["agent_token"], grant["grant_id"])
    certificate_pem = (story[1] / "bob-state" / "tls" / "s3.crt").read_text()
    assert minio_client(grant_endpoint(bob, grant["grant_id"]), *keys, certificate_pem, story[1]) \
        .bucket_exists(grant["bucket"])
    receiver.signal(signal.SIGSTOP)
    try:
        transfer_id = send(alice, alice_box, bob_box)
        wait_for(lambda: any(e["kind"] == "verifying" for e in alice.events(transfer_id)), 120,
                 "the sender to finish copying and wait for verification")
        victim = receive_dir / grant["bucket"] / "from-alice" / "frames" / "séance 1" / "deep dir" / "frame 001 ü.dat"
        data = bytearray(victim.read_bytes())
        data[7] ^= 0x01
        victim.write_bytes(bytes(data))
    finally:
        receiver.signal(signal.SIGCONT)
    record = alice.wait_state(transfer_id, ("succeeded", "failed", "canceled"), timeout=60)
    assert record["state"] == "failed"
    assert record["fatal_error"]["reason"] == "checksum_mismatch"
    assert "frames/séance 1/deep dir/frame 001 ü.dat" in record["fatal_error"]["message"]
    row = alice.files(transfer_id)["frames/séance 1/deep dir/frame 001 ü.dat"]
    assert row["sha256"] == expected["frames/séance 1/deep dir/frame 001 ü.dat"] != row["receiver_sha256"]
    assert record["files"]["verified"] == len(expected) - 1
