"""A grant made or revoked reaches the receiver within seconds, not at its next heartbeat.

A portal with the production clocks (30 s heartbeats): after Bob's receiver is online,
Bob grants Alice and the grant is served, then revokes it and the key is refused, each
well before a heartbeat could have carried it (the portal asks the receiver's agent to
sync its grants through the side channel, `sync_grants`)."""

from __future__ import annotations

import io
import time

import pytest
import urllib3
from minio.error import InvalidResponseError, S3Error

from tests.e2e.test_user_story import grant_endpoint, grant_keys, minio_client
from tests.harness import Agent, Person, PortalServer, Scratch, wait_for
from tests.tools.net import free_port

pytestmark = pytest.mark.e2e

HEARTBEAT_SECONDS = 30
# Well under a heartbeat: only the side channel can be this quick.
WITHIN_SECONDS = 10


def test_a_grant_is_served_and_a_revoked_key_refused_within_seconds():
    scratch = Scratch("dtn-grant-sync-")
    agent = None
    try:
        with PortalServer(DTN_HEARTBEAT_SECONDS=str(HEARTBEAT_SECONDS)) as portal:
            alice, bob = Person(portal.url, "alice-sync"), Person(portal.url, "bob-sync")
            bob_box = bob.register("bob-receiver", role="receiver")
            receive_dir = scratch / "bob-received"
            receive_dir.mkdir()
            first_port = free_port()
            agent = Agent(portal.url, bob_box["agent_token"], None, scratch / "bob-state", scratch.path,
                          DTN_RECEIVE_DIR=str(receive_dir), DTN_RECEIVER_HOST="127.0.0.1",
                          DTN_RECEIVER_PORT=str(first_port)).start()
            wait_for(lambda: bob.call("GET", f"/api/v1/containers/{bob_box['container_id']}")["online"], 30,
                     "Bob's receiver to come online")
            # Its first heartbeat is behind it: the next is about 30 s away.
            granted_at = time.monotonic()
            grant = bob.call("POST", "/api/v1/grants", 201,
                             json={"grantee": alice.username, "receiver": bob_box["container_id"]})
            endpoint = wait_for(lambda: grant_endpoint(bob, grant["grant_id"]), WITHIN_SECONDS,
                                "the new grant to be served and its endpoint reported", 0.2)
            assert time.monotonic() - granted_at < WITHIN_SECONDS

            certificate_pem = (scratch / "bob-state" / "tls" / "s3.crt").read_text()
            keys = grant_keys(portal.url, bob_box["agent_token"], grant["grant_id"])
            client = minio_client(endpoint, *keys, certificate_pem, scratch)
            wait_for(lambda: client.bucket_exists(grant["bucket"]), WITHIN_SECONDS, "the grant's server to answer")
            client.put_object(grant["bucket"], "before-revoke.txt", io.BytesIO(b"ok"), 2)

            def refused():
                try:
                    client.put_object(grant["bucket"], "after-revoke.txt", io.BytesIO(b"no"), 2)
                except (S3Error, InvalidResponseError, urllib3.exceptions.HTTPError):
                    return True
                return False

            revoked_at = time.monotonic()
            bob.call("POST", f"/api/v1/grants/{grant['grant_id']}/revoke")
            wait_for(refused, WITHIN_SECONDS, "the revoked key to be refused", 0.2)
            assert time.monotonic() - revoked_at < WITHIN_SECONDS
            assert (receive_dir / grant["bucket"] / "before-revoke.txt").read_bytes() == b"ok"
            assert "the portal says the grants changed" in agent.log()
    finally:
        if agent is not None:
            agent.stop()
        scratch.remove()
