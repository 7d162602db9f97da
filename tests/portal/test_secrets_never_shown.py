"""No secret reaches a person. A full send is driven through the API and the
pages (to Bob's container by ID, and to an S3 endpoint with hand-entered keys),
the agents claim and report through the agent API; then every response body a
person got, every log line (DEBUG, SQL included) and a dump of every table are
searched for the S3 secret keys and the agent and personal tokens. The only
places they may live are the agents' own answers, and the database as
ciphertext or HMAC."""

from __future__ import annotations

import logging

import pytest
from django.apps import apps
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client

from dtn_protocol.api import AGENT_TOKEN_PREFIX
from portal.accounts.models import PERSONAL_TOKEN_PREFIX
from portal.lib import crypto, tokens
from tests.portal.conftest import agent_client
from tests.portal.sending import claim, report

pytestmark = pytest.mark.usefixtures("agent_threads_db")

HAND_SECRET = "Hand-Entered-S3-Secret-4d1c9e77"
HAND_ACCESS = "AKIAHANDKEY0001"


class People:
    """Every response body a person's client received."""

    def __init__(self):
        self.bodies: list[tuple[str, str]] = []
        self.statuses: list[int] = []

    def keep(self, what: str, response):
        body = (b"".join(response.streaming_content) if response.streaming else response.content)
        self.bodies.append((what, body.decode(errors="replace")))
        self.statuses.append(response.status_code)
        return response


def table_dump() -> str:
    """Every row of every table, as text."""
    lines = []
    for model in apps.get_models():
        for row in model.objects.all().values():
            lines.append(f"{model._meta.label} {row}")
    for session in Session.objects.all():
        lines.append(f"session {session.get_decoded()}")
    return "\n".join(lines)


def test_no_secret_is_ever_shown_logged_or_stored_in_the_clear(
        caplog, django_user_model, alice, bob, alice_api, bob_api, alice_sender, bob_receiver):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    connection.force_debug_cursor = True  # log every SQL statement with its parameters
    seen = People()
    bob_agent, alice_agent = agent_client(bob_receiver), agent_client(alice_sender)
    alice_page, bob_page, admin_page = Client(), Client(), Client()
    alice_page.force_login(alice)
    bob_page.force_login(bob)
    admin_page.force_login(django_user_model.objects.create_superuser("root", "root@example.org", "x" * 20))

    # Bob's receiver checks in; Bob grants Alice (API), and looks at his grants page.
    assert bob_agent.post("/api/agent/v1/heartbeat", {"instance_id": "bob-1",
                                                      "endpoint": "https://bob-dtn.example.org:9443"},
                          format="json").status_code == 200
    granted = seen.keep("grant", bob_api.post("/api/v1/grants", {"grantee": "alice", "receiver": str(bob_receiver.pk)},
                                              format="json")).json()
    grant_id = granted["grant_id"]
    # The receiver's agent fetches its keys: the one place a receiver gets them.
    [served] = bob_agent.get("/api/agent/v1/grants").json()["grants"]
    grant_secret = served["secret_key"]
    assert len(grant_secret) >= 32

    # Alice sends by container ID (API) and by hand (page), once with a mistake.
    by_id = seen.keep("send by id", alice_api.post("/api/v1/transfers", {
        "sender": str(alice_sender.pk), "receiver": str(bob_receiver.pk), "sources": ["data/run-17"],
        "label": "by id"}, format="json")).json()["transfer_id"]
    hand = {"sender": str(alice_sender.pk), "s3_host": "s3.example.org", "s3_port": "9000", "s3_bucket": "archive",
            "s3_access_key": HAND_ACCESS, "s3_secret_key": HAND_SECRET, "overwrite": "update_changed",
            "label": "by hand"}
    seen.keep("send page error", alice_page.post("/portal/send/", {**hand, "sources": "/etc/passwd"}))
    seen.keep("send api error", alice_api.post("/api/v1/transfers", {**hand, "sources": ["../x"]}, format="json"))
    sent = seen.keep("send page", alice_page.post("/portal/send/", {**hand, "sources": "notes.txt"}, follow=True))
    by_hand = sent.redirect_chain[-1][0].rstrip("/").rsplit("/", 1)[-1]

    # Alice's agent claims each, and reports; the keys come in the claim answers only.
    first = claim(alice_agent).json()
    assert first["payload"]["transfer_id"] == by_id
    assert first["payload"]["destination"]["secret_key"] == grant_secret
    report(alice_agent, first["command_id"], "running", progress={"bytes": 5, "total_bytes": 10, "files": [
        {"path": "data/run-17/a", "size": 5, "sha256": "a" * 64, "outcome": "sent"}],
        "events": [{"at": "2026-11-25T10:00:00Z", "kind": "network_check", "message": "go"}]})
    report(alice_agent, first["command_id"], "succeeded", progress={"bytes": 10})
    second = claim(alice_agent).json()
    assert second["payload"]["destination"]["secret_key"] == HAND_SECRET
    report(alice_agent, second["command_id"], "failed", reason="auth_failed", message="403 from s3.example.org")

    # Everything a person can look at afterwards.
    seen.keep("restart", alice_api.post(f"/api/v1/transfers/{by_hand}/restart"))
    for transfer_id in (by_id, by_hand):
        for suffix in ("", "/status", "/events", "/manifest.json", "/manifest.csv"):
            seen.keep(f"api {transfer_id}{suffix}", alice_api.get(f"/api/v1/transfers/{transfer_id}{suffix}"))
        seen.keep(f"page {transfer_id}", alice_page.get(f"/portal/transfers/{transfer_id}/"))
        seen.keep(f"admin {transfer_id}", admin_page.get(f"/admin/transfers/transfer/{transfer_id}/change/"))
    for client, label in ((alice_api, "alice"), (bob_api, "bob")):
        for path in ("/api/v1/grants", f"/api/v1/grants/{grant_id}", "/api/v1/transfers", "/api/v1/containers",
                     f"/api/v1/containers/{alice_sender.pk}/commands", "/api/v1/me", "/api/v1/tokens"):
            seen.keep(f"{label} {path}", client.get(path))
    for command in (first, second):
        seen.keep("command", alice_api.get(f"/api/v1/commands/{command['command_id']}"))
    for client, label in ((alice_page, "alice"), (bob_page, "bob")):
        for path in ("/portal/send/", "/portal/transfers/", "/portal/grants/", "/portal/containers/",
                     f"/portal/containers/{alice_sender.pk}/", f"/portal/containers/{bob_receiver.pk}/",
                     "/accounts/tokens/"):
            seen.keep(f"{label} page {path}", client.get(path))
    for path in ("/admin/grants/grant/", f"/admin/grants/grant/{grant_id}/change/", "/admin/transfers/transfer/",
                 "/admin/transfers/command/", f"/admin/transfers/command/{first['command_id']}/change/",
                 "/admin/containers/container/", f"/admin/containers/container/{bob_receiver.pk}/change/"):
        seen.keep(f"admin {path}", admin_page.get(path))
    seen.keep("revoke", bob_api.post(f"/api/v1/grants/{grant_id}/revoke"))
    assert max(seen.statuses) < 500
    # Mostly real pages and documents (Bob gets 404 for Alice's things, and the mistakes 400).
    assert seen.statuses.count(200) >= 45, seen.statuses

    secrets = {
        "grant secret key": grant_secret,
        "hand-entered secret key": HAND_SECRET,
        "alice's personal token": alice_api.raw_token,
        "bob's personal token": bob_api.raw_token,
        "alice's agent token": alice_sender.raw_token,
        "bob's agent token": bob_receiver.raw_token,
    }
    # A token's secret part alone would be as bad as the whole token.
    for name in list(secrets):
        if "token" in name:
            prefix = AGENT_TOKEN_PREFIX if "agent" in name else PERSONAL_TOKEN_PREFIX
            _, secret_part = tokens.split(secrets[name], prefix)
            assert len(secret_part) >= 32
            secrets[f"{name} (secret part)"] = secret_part

    connection.force_debug_cursor = False
    logs = caplog.text + "\n".join(str(record.args) for record in caplog.records)
    dump = table_dump()
    assert "django.db.backends" in {record.name for record in caplog.records}  # SQL was captured
    for name, value in secrets.items():
        for what, body in seen.bodies:
            assert value not in body, f"{name} shown to a person in {what}"
        assert value not in logs, f"{name} written to the log"
        assert value not in dump, f"{name} stored in the clear"

    # And they are there as ciphertext, so the search above looked in the right place.
    from portal.grants.models import Grant
    from portal.transfers.models import Transfer

    assert crypto.decrypt(Grant.objects.get(pk=grant_id).secret_key_encrypted) == grant_secret
    assert crypto.decrypt(Transfer.objects.get(pk=by_hand).s3_secret_key_encrypted) == HAND_SECRET
