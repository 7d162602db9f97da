"""Sending one delivery: a mail through Django's mail backend, or a signed POST.

Errors become DeliveryFailed with a message for the person's delivery record:
it names the webhook's scheme, host and port only (a path or query string may
hold a token) and never the signing secret."""

from __future__ import annotations

import http.client
import json
import smtplib
import socket
import ssl
import time
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMessage
from django.template.loader import render_to_string

from dtn_protocol.units import human_bytes
from portal.notifications import signing
from portal.notifications.models import Channel, Event, NotificationSettings
from portal.notifications.validation import WebhookRefused, origin, resolve

# Enough to read a status line and a short answer; the body is not used.
MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = "DTN-in-a-Box-webhook/1"


class DeliveryFailed(Exception):
    def __init__(self, message: str, retry: bool = True):
        super().__init__(message[:480])
        self.retry = retry


def send(delivery) -> None:
    if delivery.channel == Channel.EMAIL:
        send_email(delivery)
    else:
        send_webhook(delivery)


# --- mail -------------------------------------------------------------------

def mail_subject(payload: dict) -> str:
    name = payload.get("label") or f"transfer {str(payload.get('transfer_id', ''))[:8]}"
    event = payload.get("event")
    if event == Event.SUCCEEDED:
        what = "succeeded"
    elif event == Event.FAILED:
        what = f"failed ({payload['reason']})" if payload.get("reason") else "failed"
    elif event == Event.STALL:
        what = "stalled"
    else:
        return "[DTN] Test notification"
    return f"[DTN] {name}: {what}"


def mail_body(payload: dict) -> str:
    return render_to_string("notifications/email/transfer_event.txt", {
        "p": payload,
        # The page's figure: what is at the destination (sent or already there), each byte once.
        "bytes_done": human_bytes((payload.get("bytes_transferred") or 0) + (payload.get("bytes_skipped") or 0)),
        "bytes_total": human_bytes(payload.get("bytes_total") or 0),
        "bytes_resent": human_bytes(payload["bytes_resent"]) if payload.get("bytes_resent") else "",
    })


def send_email(delivery) -> None:
    address = delivery.user.email
    if not address:
        raise DeliveryFailed("your account has no email address", retry=False)
    message = EmailMessage(mail_subject(delivery.payload), mail_body(delivery.payload),
                           settings.DEFAULT_FROM_EMAIL, [address],
                           headers={"X-DTN-Delivery": str(delivery.id)})
    try:
        message.send()
    except (smtplib.SMTPException, OSError) as exc:
        # SMTP errors carry the server's answer, never our password.
        raise DeliveryFailed(f"the mail could not be sent: {type(exc).__name__}: {exc}") from None


# --- webhook ----------------------------------------------------------------

def webhook_body(delivery) -> bytes:
    return json.dumps({**delivery.payload, "delivery_id": str(delivery.id)}, separators=(",", ":"),
                      ensure_ascii=False).encode()


def send_webhook(delivery) -> None:
    prefs = NotificationSettings.of(delivery.user)
    url = prefs.webhook_url
    if not url:
        raise DeliveryFailed("no webhook URL is set any more", retry=False)
    if not prefs.has_webhook_secret:
        raise DeliveryFailed("no signing secret: rotate the secret on the settings page", retry=False)
    body = webhook_body(delivery)
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        signing.TIMESTAMP_HEADER: str(timestamp),
        signing.SIGNATURE_HEADER: signing.signature(prefs.webhook_secret(), timestamp, body),
        signing.DELIVERY_HEADER: str(delivery.id),
        signing.EVENT_HEADER: delivery.event,
    }
    status = post(url, body, headers, settings.DTN_WEBHOOK_TIMEOUT_SECONDS)
    where = origin(url)
    if 200 <= status < 300:
        return
    if 300 <= status < 400:
        raise DeliveryFailed(f"{where} answered with a redirect (HTTP {status}); redirects are not followed",
                             retry=False)
    # The receiver may be overloaded or restarting: worth another try. Other 4xx will not change.
    retry = status >= 500 or status in (408, 425, 429)
    raise DeliveryFailed(f"{where} answered HTTP {status}", retry=retry)


def post(url: str, body: bytes, headers: dict, timeout: float) -> int:
    """POST once, to an address checked by validation.resolve; the status code.
    http.client never follows redirects, and the connection goes to the very
    address that was checked, so a second DNS answer cannot redirect it."""
    parts = urlsplit(url)
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    where = origin(url)
    try:
        addresses = resolve(parts.hostname, port)
    except WebhookRefused as exc:
        raise DeliveryFailed(f"{where}: {exc}", retry=exc.transient) from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if https:
        connection = _PinnedHTTPS(parts.hostname, port, addresses, timeout, ssl.create_default_context())
    else:
        connection = _PinnedHTTP(parts.hostname, port, addresses, timeout)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(MAX_RESPONSE_BYTES)
        return response.status
    except TimeoutError:
        raise DeliveryFailed(f"{where} did not answer within {timeout:g} s") from None
    except ssl.SSLError as exc:
        raise DeliveryFailed(f"{where}: TLS failed ({exc.reason or exc})") from None
    except http.client.HTTPException:
        raise DeliveryFailed(f"{where} sent a malformed answer") from None
    except OSError as exc:
        raise DeliveryFailed(f"{where} could not be reached: {exc.strerror or type(exc).__name__}") from None
    finally:
        connection.close()


def _connect(addresses: list[str], port: int, timeout: float) -> socket.socket:
    last = None
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout=timeout)
        except OSError as exc:
            last = exc
    raise last


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host, port, addresses, timeout):
        super().__init__(host, port, timeout=timeout)
        self._addresses = addresses

    def connect(self):
        self.sock = _connect(self._addresses, self.port, self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host, port, addresses, timeout, context):
        super().__init__(host, port, timeout=timeout, context=context)
        self._addresses = addresses

    def connect(self):
        sock = _connect(self._addresses, self.port, self.timeout)
        # The certificate is checked against the host name, not the address connected to.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)
