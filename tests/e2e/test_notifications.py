"""Notifications through the real stack: a portal server (gunicorn, its delivery
worker started by the ASGI lifespan) with the file mail backend, a real agent,
rclone and S3 server, and a webhook receiver on 127.0.0.1 in this test.

Alice sends one transfer that succeeds, one that fails (wrong S3 keys) and,
from a second sender, one that stalls for real: its receiving S3 server is
frozen (SIGSTOP) as soon as bytes move, so the portal's stall detection
(portal/transfers/throughput.py) sees the rate collapse against the network
check's reference, capped by the transfer's bandwidth limit. The stall runs
alongside the other two to keep the test short.

Each event leaves exactly one mail in the mail folder and reaches her webhook
with a valid HMAC over timestamp and body; the webhook's first answer is a 503,
so one delivery is retried and must be signed again. Charlie, who set up a
webhook too, hears nothing of Alice's transfers."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import time

import pytest

from portal.notifications import signing
from tests.e2e.conftest import Site
from tests.harness import Person, PortalServer, Scratch, wait_for, write_random
from tests.tools.mail_files import read_mail_dir
from tests.tools.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.e2e

FINISHED = ("succeeded", "failed", "canceled")


@pytest.fixture(scope="module")
def notifying_portal():
    server = PortalServer(DTN_HEARTBEAT_SECONDS="2", DTN_EMAIL_BACKEND="file", DTN_WEBHOOK_ALLOW_PRIVATE="true",
                          DTN_NOTIFY_RETRY_SECONDS="1", DTN_NOTIFY_POLL_SECONDS="1")
    server.env["DTN_SITE_URL"] = server.url
    server.env["DTN_EMAIL_FILE_PATH"] = str(server.state_dir / "mail")
    with server:
        yield server


def verified(secret: str, call) -> dict:
    """The receiver's check, as docs/notifications.md gives it."""
    headers = {k.lower(): v for k, v in call.headers.items()}
    timestamp = headers["x-dtn-timestamp"]
    assert abs(time.time() - int(timestamp)) < 300
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + call.body,
                                    hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, headers["x-dtn-signature"]), "bad signature"
    assert signing.verify(secret, timestamp, headers["x-dtn-signature"], call.body)
    body = json.loads(call.body)
    assert body["delivery_id"] == headers["x-dtn-delivery"] and body["event"] == headers["x-dtn-event"]
    return body


def test_each_event_mails_once_and_reaches_the_webhook_signed(notifying_portal):
    portal = notifying_portal
    alice = Person(portal.url, "alice-notify")
    charlie = Person(portal.url, "charlie-notify")
    scratches = [Scratch("dtn-e2e-notify-"), Scratch("dtn-e2e-stall-")]
    sites = []
    with WebhookReceiver(statuses=[503]) as hook, WebhookReceiver() as nosy:
        try:
            secret = alice.call("PATCH", "/api/v1/notifications/settings",
                                json={"webhook_url": hook.url})["webhook_secret"]
            charlie.call("PATCH", "/api/v1/notifications/settings", json={"webhook_url": nosy.url})

            # The stall first: it needs STALL_SECONDS of collapse before the portal flags it.
            slow = Site(portal, alice, scratches[1])
            sites.append(slow)
            write_random(slow.send_dir / "big.bin", 64 * 2**20)
            slow.agent().start()
            stalled = slow.send(["big.bin"], prefix="stall", label="stall run", bandwidth_limit="2M")
            wait_for(lambda: alice.transfer(stalled)["bytes"]["transferred"] > 0, 30, "the first bytes to move")
            slow.s3.process.send_signal(signal.SIGSTOP)
            try:
                site = Site(portal, alice, scratches[0])
                sites.append(site)
                write_random(site.send_dir / "a.bin", 300_000)
                site.agent().start()
                good = site.send(["a.bin"], prefix="good", label="good run")
                bad = site.send(["a.bin"], prefix="bad", label="bad run", secret_key="not-the-secret-key-at-all")
                assert alice.wait_state(good, FINISHED)["state"] == "succeeded"
                record = alice.wait_state(bad, FINISHED)
                assert record["state"] == "failed"
                reason = record["fatal_error"]["reason"]  # auth_failed; the mail and the call must say the same

                def all_delivered():
                    rows = alice.call("GET", "/api/v1/notifications/deliveries")["results"]
                    return rows if len(rows) == 6 and all(r["status"] == "delivered" for r in rows) else None

                deliveries = wait_for(all_delivered, 45, "six deliveries (a mail and a webhook call per event)")
                assert alice.transfer(stalled)["state"] == "active"
            finally:
                slow.s3.process.send_signal(signal.SIGCONT)
            alice.stop(stalled)
            alice.wait_state(stalled, FINISHED, timeout=30)
        finally:
            for made in sites:
                made.close()
            for scratch in scratches:
                scratch.remove()

        # The record: one mail and one webhook call per event; the refused call was retried.
        by_key = {(d["transfer_id"], d["event"], d["channel"]): d for d in deliveries}
        assert set(by_key) == {(good, "succeeded", "email"), (good, "succeeded", "webhook"),
                               (bad, "failed", "email"), (bad, "failed", "webhook"),
                               (stalled, "stall", "email"), (stalled, "stall", "webhook")}
        assert sorted(d["attempts"] for d in deliveries if d["channel"] == "webhook") == [1, 1, 2]

        # The webhook: every call signed, the retry too, under the same delivery ID.
        bodies = [verified(secret, call) for call in hook.received]
        assert len(bodies) == 4
        assert {b["delivery_id"] for b in bodies} == {d["delivery_id"] for d in deliveries
                                                      if d["channel"] == "webhook"}
        events = {b["transfer_id"]: b for b in bodies}
        assert (events[good]["event"], events[good]["label"], events[good]["state"]) == ("succeeded", "good run",
                                                                                         "succeeded")
        assert events[good]["url"] == f"{portal.url}/portal/transfers/{good}/"
        assert events[good]["bytes_transferred"] == 300_000
        assert (events[bad]["event"], events[bad]["reason"]) == ("failed", reason)
        assert (events[stalled]["event"], events[stalled]["state"]) == ("stall", "active")
        assert "under 10%" in events[stalled]["message"]

        # Charlie heard nothing.
        assert nosy.received == []
        assert charlie.call("GET", "/api/v1/notifications/deliveries")["results"] == []

    # The mail folder: exactly one mail per event, to Alice, linking the transfer.
    mails = read_mail_dir(portal.state_dir / "mail")
    assert sorted((m["To"], m["Subject"]) for m in mails) == [
        ("alice-notify@example.org", f"[DTN] bad run: failed ({reason})"),
        ("alice-notify@example.org", "[DTN] good run: succeeded"),
        ("alice-notify@example.org", "[DTN] stall run: stalled"),
    ]
    good_mail = next(m for m in mails if "succeeded" in m["Subject"]).get_payload(decode=True).decode()
    assert f"{portal.url}/portal/transfers/{good}/" in good_mail
