"""Helpers for the grant and send tests: a receiver that has checked in, a grant,
a transfer queued through the same service the page and the API use."""

from __future__ import annotations

from portal.containers.models import Container

BOB_ENDPOINT = "https://bob-dtn.example.org:9443"
BOB_CERT_PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
BOB_CERT_SHA256 = ":".join(["ab"] * 32)
HAND_SECRET = "hand-entered-Secret-9f8e7d6c5b4a"
HAND_S3 = {"host": "s3.example.org", "port": 9000, "tls": False, "bucket": "alice-archive",
           "access_key": "AKIAHANDENTERED01", "secret_key": HAND_SECRET}


def checked_in(receiver, endpoint=BOB_ENDPOINT):
    """The receiver as its agent left it after heartbeats: an endpoint and a pinned certificate."""
    Container.objects.filter(pk=receiver.pk).update(endpoint=endpoint, certificate_pem=BOB_CERT_PEM,
                                                    certificate_sha256=BOB_CERT_SHA256)
    receiver.refresh_from_db()
    return receiver


def grant(receiver, grantee):
    from portal.grants.models import Grant

    return Grant.issue(receiver, grantee)


def send(owner, sender, receiver=None, s3=None, sources=("data/run-17",), **options):
    from portal.transfers import services

    request = services.SendRequest(sender_id=sender.pk, receiver_id=receiver.pk if receiver else None, s3=s3,
                                   sources=list(sources), **options)
    return services.send(owner, request)


# For tests/portal/test_route_sweep.py's KWARG_FACTORIES: one of Bob's grants (to
# Alice) and one of Alice's transfers through it, made once per test.

def sweep_grant(world):
    if "grant" not in world.extra:
        world.extra["grant"] = grant(checked_in(world.bob_receiver), world.alice)
    return world.extra["grant"].pk


def sweep_transfer(world):
    if "transfer" not in world.extra:
        sweep_grant(world)
        world.extra["transfer"] = send(world.alice, world.alice_sender, receiver=world.bob_receiver)
    return world.extra["transfer"].pk


# The agent's side, through the agent API. Claims run on the server's worker
# threads: tests that claim need the `agent_threads_db` fixture.

CLAIM_URL = "/api/agent/v1/commands/next?wait=0"


def claim(agent, instance_id="inst-1"):
    return agent.post(CLAIM_URL, {"instance_id": instance_id}, format="json")


def report(agent, command_id, state, instance_id="inst-1", progress=None, **fields):
    body = {"instance_id": instance_id, "state": state, **fields}
    if progress is not None:
        body["progress"] = progress
    return agent.patch(f"/api/agent/v1/commands/{command_id}", body, format="json")
