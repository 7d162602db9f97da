"""Transfer events become deliveries through the real report path (the agent
API, its transaction, the transfer_event signal after commit), and the worker's
pass sends them: one mail per event to the transfer's owner only, webhook calls
signed over timestamp and body, bounded retries, no redirects, no URL in logs."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from portal.notifications import outbox, signing
from portal.notifications.models import Delivery, NotificationSettings
from portal.notifications.worker import Worker, wake
from portal.transfers import queue
from portal.transfers.models import Transfer
from tests.portal.sending import HAND_S3, claim, report, send
from tests.tools.mail_files import read_mail_dir
from tests.tools.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.usefixtures("agent_threads_db")


@pytest.fixture(autouse=True)
def _local_webhooks(settings):
    # The receivers in these tests listen on 127.0.0.1.
    settings.DTN_WEBHOOK_ALLOW_PRIVATE = True
    settings.SITE_URL = "https://dtn.example.org"
    settings.DTN_WEBHOOK_TIMEOUT_SECONDS = 2


@pytest.fixture
def receiver():
    with WebhookReceiver() as server:
        yield server


def hook(user, url, **toggles) -> str:
    from portal.notifications import services

    _, secret = services.update(user, {"webhook_url": url, **toggles})
    return secret


def started(alice, alice_sender, alice_agent, label="run 17"):
    transfer = send(alice, alice_sender, s3=HAND_S3, label=label)
    command_id = claim(alice_agent).json()["command_id"]
    return transfer, command_id


def progress(**fields):
    return {"bytes": 4096, "total_bytes": 4096, "speed": 0.0, "eta": None, "files_done": 2, "files_total": 2,
            "errors": 0, "retries": 0, "files": [], "events": [], **fields}


def succeed(alice, alice_sender, alice_agent, label="run 17") -> Transfer:
    transfer, command_id = started(alice, alice_sender, alice_agent, label)
    assert report(alice_agent, command_id, "succeeded", progress=progress()).status_code == 200
    return Transfer.objects.get(pk=transfer.pk)


def fail(alice, alice_sender, alice_agent, label="run 18") -> Transfer:
    transfer, command_id = started(alice, alice_sender, alice_agent, label)
    answer = report(alice_agent, command_id, "failed", progress=progress(bytes=100), reason="auth_failed",
                    message="the S3 server refused the keys")
    assert answer.status_code == 200, answer.content
    return Transfer.objects.get(pk=transfer.pk)


def stall(transfer) -> None:
    # What the stall detection records; sent after commit like every logged event.
    transfer.log("stall", "no bytes moved for 120 s")


# --- mail -------------------------------------------------------------------

def test_a_succeeded_transfer_mails_its_owner_once(alice, alice_sender, alice_agent, mailoutbox):
    transfer = succeed(alice, alice_sender, alice_agent)
    assert outbox.deliver_due() == 1
    assert outbox.deliver_due() == 0
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert mail.to == ["alice@example.org"]
    assert mail.subject == "[DTN] run 17: succeeded"
    for words in ("run 17", str(transfer.pk), "alice-dtn → ", "s3.example.org", "State:        succeeded",
                  "4.0 KiB of 4.0 KiB", f"https://dtn.example.org/portal/transfers/{transfer.pk}/"):
        assert words in mail.body, words
    delivery = Delivery.objects.get(user=alice)
    assert (delivery.status, delivery.attempts, delivery.channel, delivery.event) == ("delivered", 1, "email",
                                                                                        "succeeded")


def test_the_mail_shows_the_pages_figures_with_the_bytes_sent_again_apart(alice, alice_sender, alice_agent,
                                                                         mailoutbox):
    transfer, command_id = started(alice, alice_sender, alice_agent)
    report(alice_agent, command_id, "running", progress=progress(bytes=3 * 2**20, total_bytes=4 * 2**20))
    queue.stop_transfer(Transfer.objects.get(pk=transfer.pk))
    report(alice_agent, command_id, "canceled", progress=progress(bytes=3 * 2**20, total_bytes=4 * 2**20))
    queue.restart(Transfer.objects.get(pk=transfer.pk))
    command_id = claim(alice_agent, "inst-2").json()["command_id"]
    # Nothing was reported sent: the new lease sends all 4 MiB again; 3 MiB of them were counted already.
    assert report(alice_agent, command_id, "succeeded", instance_id="inst-2",
                  progress=progress(bytes=4 * 2**20, total_bytes=4 * 2**20)).status_code == 200
    outbox.deliver_due()
    body = mailoutbox[-1].body
    assert "Bytes:        4.0 MiB of 4.0 MiB (+3.0 MiB re-sent)" in body, body


def test_a_failed_transfer_mails_the_reason(alice, alice_sender, alice_agent, mailoutbox):
    fail(alice, alice_sender, alice_agent)
    outbox.deliver_due()
    assert [m.subject for m in mailoutbox] == ["[DTN] run 18: failed (auth_failed)"]
    assert "Reason:       auth_failed" in mailoutbox[0].body
    assert "refused the keys" in mailoutbox[0].body


def test_a_stall_mails_once_per_stall_event(alice, alice_sender, alice_agent, mailoutbox):
    transfer, _ = started(alice, alice_sender, alice_agent)
    stall(transfer)
    outbox.deliver_due()
    assert [m.subject for m in mailoutbox] == ["[DTN] run 17: stalled"]
    assert "no bytes moved for 120 s" in mailoutbox[0].body


def test_events_that_are_not_outcomes_send_nothing(alice, alice_sender, alice_agent, mailoutbox, receiver):
    hook(alice, receiver.url)
    transfer, command_id = started(alice, alice_sender, alice_agent)
    report(alice_agent, command_id, "running", progress=progress(bytes=10))
    transfer.log("stop_requested", "stop requested")
    assert Delivery.objects.count() == 0


def test_no_mail_for_an_event_turned_off(alice, alice_sender, alice_agent, mailoutbox):
    from portal.notifications import services

    services.update(alice, {"email_succeeded": False})
    succeed(alice, alice_sender, alice_agent)
    fail(alice, alice_sender, alice_agent)
    outbox.deliver_due()
    assert [m.subject for m in mailoutbox] == ["[DTN] run 18: failed (auth_failed)"]


def test_no_mail_without_an_address(alice, alice_sender, alice_agent, mailoutbox):
    alice.email = ""
    alice.save()
    succeed(alice, alice_sender, alice_agent)
    assert Delivery.objects.count() == 0 and outbox.deliver_due() == 0


def test_other_peoples_transfers_never_notify_you(alice, bob, charlie, alice_sender, alice_agent, mailoutbox,
                                                  receiver):
    for person in (bob, charlie):
        hook(person, receiver.url)
    succeed(alice, alice_sender, alice_agent)
    fail(alice, alice_sender, alice_agent)
    outbox.deliver_due()
    assert {tuple(m.to) for m in mailoutbox} == {("alice@example.org",)}
    assert receiver.received == []
    assert not Delivery.objects.exclude(user=alice).exists()


def test_the_file_backend_holds_one_mail_per_event(alice, alice_sender, alice_agent, settings, tmp_path):
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path)
    done = succeed(alice, alice_sender, alice_agent)
    failed = fail(alice, alice_sender, alice_agent)
    stall(failed)
    outbox.deliver_due()
    mails = read_mail_dir(tmp_path)
    assert sorted((m["Subject"], m["To"]) for m in mails) == [
        ("[DTN] run 17: succeeded", "alice@example.org"),
        ("[DTN] run 18: failed (auth_failed)", "alice@example.org"),
        ("[DTN] run 18: stalled", "alice@example.org"),
    ]
    assert str(done.pk) in next(m for m in mails if "succeeded" in m["Subject"]).get_payload()


# --- webhook ----------------------------------------------------------------

def test_each_webhook_call_is_signed_over_its_timestamp_and_body(alice, alice_sender, alice_agent, receiver):
    secret = hook(alice, receiver.url, email_succeeded=False, email_failed=False)
    done = succeed(alice, alice_sender, alice_agent)
    failed = fail(alice, alice_sender, alice_agent)
    assert outbox.deliver_due() == 2
    assert len(receiver.received) == 2
    for call, transfer in zip(receiver.received, (done, failed)):
        assert call.path == "/hooks/dtn"
        headers = {k.lower(): v for k, v in call.headers.items()}
        timestamp = headers["x-dtn-timestamp"]
        expected = hmac.new(secret.encode(), timestamp.encode() + b"." + call.body, hashlib.sha256).hexdigest()
        assert headers["x-dtn-signature"] == f"sha256={expected}"
        assert abs(int(timestamp) - time.time()) < 60
        assert signing.verify(secret, timestamp, headers["x-dtn-signature"], call.body)
        # Tampering with the body or the timestamp breaks it.
        assert not signing.verify(secret, timestamp, headers["x-dtn-signature"], call.body + b" ")
        assert not signing.verify(secret, str(int(timestamp) + 1), headers["x-dtn-signature"], call.body)
        body = json.loads(call.body)
        assert body["transfer_id"] == str(transfer.pk) and body["label"] == transfer.label
        assert body["delivery_id"] == headers["x-dtn-delivery"]
        assert body["event"] == headers["x-dtn-event"]
        assert body["url"] == f"https://dtn.example.org/portal/transfers/{transfer.pk}/"
    first, second = (json.loads(c.body) for c in receiver.received)
    assert (first["event"], first["state"], first["reason"]) == ("succeeded", "succeeded", None)
    assert (second["event"], second["state"], second["reason"]) == ("failed", "failed", "auth_failed")
    assert first["bytes_transferred"] == 4096 and second["message"].startswith("auth_failed")


def test_an_old_timestamp_fails_verification_even_with_the_right_signature():
    body = b'{"event":"test"}'
    old = int(time.time()) - 3600
    assert not signing.verify("whsec_x", str(old), signing.signature("whsec_x", old, body), body)


def test_a_rotated_secret_signs_the_next_call(alice, receiver):
    from portal.notifications import services

    old = hook(alice, receiver.url)
    _, new = services.rotate_secret(alice)
    outbox.enqueue_test(alice)
    outbox.deliver_due()
    call = next(c for c in receiver.received)
    headers = {k.lower(): v for k, v in call.headers.items()}
    assert signing.verify(new, headers["x-dtn-timestamp"], headers["x-dtn-signature"], call.body)
    assert not signing.verify(old, headers["x-dtn-timestamp"], headers["x-dtn-signature"], call.body)


def test_a_failing_webhook_is_retried_later_then_given_up(alice, settings):
    settings.DTN_NOTIFY_MAX_ATTEMPTS = 2
    settings.DTN_NOTIFY_RETRY_SECONDS = 30
    with WebhookReceiver(statuses=[503, 500]) as server:
        hook(alice, server.url, email_succeeded=False)
        alice.email = ""
        alice.save()
        outbox.enqueue_test(alice)
        outbox.deliver_due()
        delivery = Delivery.objects.get(user=alice)
        assert (delivery.status, delivery.attempts) == ("pending", 1)
        assert delivery.last_error == f"http://127.0.0.1:{server.port} answered HTTP 503"
        assert delivery.next_attempt_at > timezone.now() + timedelta(seconds=25)
        assert outbox.deliver_due() == 0  # not due yet
        Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
        outbox.deliver_due()
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == ("failed", 2)
        assert "HTTP 500" in delivery.last_error
        assert len(server.received) == 2
        # Same delivery, so the same id: a receiver can drop a repeat.
        assert len({json.loads(c.body)["delivery_id"] for c in server.received}) == 1


def test_a_redirect_is_never_followed(alice):
    with WebhookReceiver() as elsewhere, WebhookReceiver(statuses=[302], location=elsewhere.url) as server:
        hook(alice, server.url)
        alice.email = ""
        alice.save()
        outbox.enqueue_test(alice)
        outbox.deliver_due()
        delivery = Delivery.objects.get(user=alice)
        assert delivery.status == "failed" and delivery.attempts == 1
        assert "redirect" in delivery.last_error
        assert elsewhere.received == []


def test_a_slow_webhook_times_out_and_is_retried(alice, settings):
    settings.DTN_WEBHOOK_TIMEOUT_SECONDS = 1
    with WebhookReceiver(delay=2.5) as server:
        hook(alice, server.url)
        alice.email = ""
        alice.save()
        outbox.enqueue_test(alice)
        began = time.monotonic()
        outbox.deliver_due()
        assert time.monotonic() - began < 2
        delivery = Delivery.objects.get(user=alice)
        assert delivery.status == "pending" and "did not answer within 1 s" in delivery.last_error


def test_the_webhook_url_never_reaches_logs_or_the_record(alice, caplog):
    caplog.set_level(logging.DEBUG)
    # Nobody listens on this port: the call fails.
    with WebhookReceiver() as server:
        port = server.port
    hook(alice, f"http://127.0.0.1:{port}/hooks/T0KEN-IN-PATH?key=QUERYSECRET")
    alice.email = ""
    alice.save()
    outbox.enqueue_test(alice)
    outbox.deliver_due()
    delivery = Delivery.objects.get(user=alice)
    assert delivery.last_error.startswith(f"http://127.0.0.1:{port} could not be reached")
    secret = NotificationSettings.objects.get(user=alice).webhook_secret()
    for text in (caplog.text, delivery.last_error, json.dumps(delivery.payload)):
        assert "T0KEN-IN-PATH" not in text and "QUERYSECRET" not in text and secret not in text


def test_a_name_that_resolves_to_a_private_address_is_refused_at_delivery(alice, settings):
    with WebhookReceiver() as server:
        hook(alice, f"http://localhost:{server.port}/hooks")
        settings.DTN_WEBHOOK_ALLOW_PRIVATE = False
        alice.email = ""
        alice.save()
        outbox.enqueue_test(alice)
        outbox.deliver_due()
        delivery = Delivery.objects.get(user=alice)
        assert "non-public address" in delivery.last_error
        assert (delivery.status, delivery.attempts) == ("failed", 1)  # trying again would not change it
        assert server.received == []


# --- the report path and the worker -----------------------------------------

def test_a_broken_listener_never_breaks_the_agents_report(alice, alice_sender, alice_agent, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("outbox down")

    monkeypatch.setattr(outbox, "on_transfer_event", broken)
    transfer = succeed(alice, alice_sender, alice_agent)
    assert transfer.state == "succeeded"
    assert "could not be queued" in caplog.text


def test_a_delivery_is_claimed_by_one_worker_only(alice):
    [delivery] = outbox.enqueue_test(alice)
    now = timezone.now()
    assert outbox.claim(delivery, now) is True
    assert outbox.claim(delivery, now) is False


def test_the_worker_thread_delivers_when_woken(alice, alice_sender, alice_agent, receiver, settings, mailoutbox):
    settings.DTN_NOTIFY_POLL_SECONDS = 60  # so only the wake-up can explain a prompt delivery
    hook(alice, receiver.url)
    worker = Worker()
    worker.start()
    try:
        time.sleep(0.2)  # the first, empty pass is over; the worker now sleeps
        succeed(alice, alice_sender, alice_agent)
        # Watched from outside the database: the test database is an in-memory SQLite
        # whose shared cache does not let two threads wait for each other's locks.
        deadline = time.monotonic() + 10
        while (not receiver.received or not mailoutbox) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop(timeout=10)
    assert not worker.is_alive()
    assert len(receiver.received) == 1 and len(mailoutbox) == 1
    assert sorted(Delivery.objects.values_list("channel", "status")) == [("email", "delivered"),
                                                                        ("webhook", "delivered")]
