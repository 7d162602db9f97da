"""Sending to a receiver container through a grant, over TLS with the
receiver's self-signed certificate pinned by the portal, and verified by the
receiver's own SHA-256 of what landed.

Until the receiver agent runs as one process (the receiver issue), the test
plays its part with the real pieces: the receiver's heartbeat reports the
certificate and where the grant is served; the S3 server is a real `rclone
serve s3` with the grant's keys, fetched from the portal's agent API as the
receiver does; and the receiver's side channel is the agent's own SideChannel
answering `verify_received` over the receive folder."""

from __future__ import annotations

import hashlib
import itertools

import pytest
import requests

from agent.loop.portal import PortalClient
from agent.loop.sidechannel import SideChannel
from agent.tasks import FolderTasks
from agent.tls import ensure_certificate
from tests.harness import Person, sha256, wait_for, write_random

pytestmark = pytest.mark.e2e

FINISHED = ("succeeded", "failed", "canceled")
_bobs = itertools.count(1)


class ReceiverSideChannel:
    """The receiver's answers to the portal's verify_received tasks, from its receive folder."""

    def __init__(self, site, token: str):
        client = lambda: PortalClient(site.portal.url, token, "receiver-e2e")  # noqa: E731
        self.side = SideChannel(client(), {"verify_received": FolderTasks(site.recv_dir, max_bytes=None).verify_files},
                                poller=client(), poll_seconds=2)

    def __enter__(self):
        self.side.start()
        return self

    def __exit__(self, *exc):
        self.side.stop()


def receiver_with_grant(site, alice, certificate_dir):
    bob = Person(site.portal.url, f"bob-tls-{next(_bobs)}-{site.container['container_id'][:8]}")
    receiver = bob.register("bob-receiver", role="receiver")
    bob.call("POST", "/api/v1/grants", 201, json={"grantee": alice.username, "receiver": receiver["container_id"]})
    answer = requests.get(f"{site.portal.url}/api/agent/v1/grants", timeout=30,
                          headers={"Authorization": f"Bearer {receiver['agent_token']}"})
    assert answer.status_code == 200, answer.text
    grant = answer.json()["grants"][0]
    certificate = ensure_certificate(certificate_dir, ["127.0.0.1"])
    server = site.s3_server(cert=certificate.cert_path, key=certificate.key_path)
    server.access_key, server.secret_key = grant["access_key"], grant["secret_key"]
    server.make_bucket(grant["bucket"])
    server.start()
    return receiver, grant, server, certificate


def check_in(site, receiver: dict, grant: dict, endpoint: str, certificate):
    """The receiver's heartbeat: its certificate, and where the grant is served."""
    body = {"instance_id": "receiver-e2e", "endpoint": endpoint, "certificate_pem": certificate.pem,
            "certificate_sha256": certificate.sha256, "grants": [{"grant_id": grant["grant_id"], "endpoint": endpoint}]}
    answer = requests.post(f"{site.portal.url}/api/agent/v1/heartbeat", json=body, timeout=30,
                           headers={"Authorization": f"Bearer {receiver['agent_token']}"})
    assert answer.status_code == 200, answer.text


def send_to(alice, site, receiver_id: str, sources, **options) -> str:
    body = {"sender": site.container["container_id"], "receiver": receiver_id, "sources": sources, **options}
    return alice.call("POST", "/api/v1/transfers", 201, json=body)["transfer_id"]


def test_a_transfer_to_a_receiver_trusts_exactly_its_pinned_certificate(site, alice):
    receiver, grant, server, certificate = receiver_with_grant(site, alice, site.scratch / "tls")
    check_in(site, receiver, grant, server.endpoint, certificate)
    write_random(site.send_dir / "pinned.bin", 3_000_000)
    site.agent().start()

    with ReceiverSideChannel(site, receiver["agent_token"]):
        transfer = send_to(alice, site, receiver["container_id"], ["pinned.bin"], prefix="tls")
        record = alice.wait_state(transfer, FINISHED)
    assert record["state"] == "succeeded", record
    landed = site.recv_dir / grant["bucket"] / "tls" / "pinned.bin"
    assert sha256(landed) == sha256(site.send_dir / "pinned.bin")
    # Verified where it landed: the receiver's SHA-256 equals the sender's.
    row = alice.files(transfer)["pinned.bin"]
    assert row["sha256"] == row["receiver_sha256"] == sha256(landed)
    assert record["files"]["verified"] == 1
    # The pinned certificate is kept by fingerprint in the state dir (public data, for rclone's ca_cert).
    kept = list((site.scratch / "state" / "certs").glob("*.pem"))
    assert [p.stem for p in kept] == [certificate.sha256.replace(":", "")]


def test_a_receiver_presenting_another_certificate_fails_with_certificate_mismatch(site, alice):
    receiver, grant, server, certificate = receiver_with_grant(site, alice, site.scratch / "tls")
    other = ensure_certificate(site.scratch / "other-tls", ["127.0.0.1"])
    check_in(site, receiver, grant, server.endpoint, other)  # it reports one certificate, serves another
    write_random(site.send_dir / "pinned.bin", 1000)
    site.agent().start()

    transfer = send_to(alice, site, receiver["container_id"], ["pinned.bin"])
    record = alice.wait_state(transfer, FINISHED)
    assert record["state"] == "failed" and record["fatal_error"]["reason"] == "certificate_mismatch", record
    message = record["fatal_error"]["message"]
    assert certificate.sha256.replace(":", "") in message and other.sha256.replace(":", "") in message
    assert not (site.recv_dir / grant["bucket"] / "pinned.bin").exists()


def test_bytes_that_changed_where_they_landed_fail_the_transfer_with_checksum_mismatch(site, alice):
    receiver, grant, server, certificate = receiver_with_grant(site, alice, site.scratch / "tls")
    check_in(site, receiver, grant, server.endpoint, certificate)
    write_random(site.send_dir / "run" / "good.bin", 100_000)
    write_random(site.send_dir / "run" / "spoilt.bin", 100_000)
    site.agent().start()
    transfer = send_to(alice, site, receiver["container_id"], ["run"], prefix="tampered")

    # The sender has sent and hashed everything and waits for the receiver's checksums.
    wait_for(lambda: alice.latest_command(transfer)["progress"].get("phase") == "verifying", 30,
             "the verifying phase", 0.1)
    spoilt = site.recv_dir / grant["bucket"] / "tampered" / "run" / "spoilt.bin"
    spoilt.write_bytes(b"x" * spoilt.stat().st_size)  # what a failing disk or a meddler leaves
    with ReceiverSideChannel(site, receiver["agent_token"]):
        record = alice.wait_state(transfer, FINISHED)
    assert record["state"] == "failed" and record["fatal_error"]["reason"] == "checksum_mismatch", record
    assert "run/spoilt.bin" in record["fatal_error"]["message"]
    assert "run/good.bin" not in record["fatal_error"]["message"]
    files = alice.files(transfer)
    assert files["run/good.bin"]["receiver_sha256"] == files["run/good.bin"]["sha256"]
    assert files["run/spoilt.bin"]["receiver_sha256"] == hashlib.sha256(b"x" * 100_000).hexdigest()
