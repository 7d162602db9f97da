"""The webhook signature: HMAC-SHA256, under the person's signing secret, of
`<timestamp>.<body>`. The timestamp is inside the signed material so a captured
delivery cannot be replayed later with a fresh timestamp; docs/notifications.md
shows a receiver's check."""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-DTN-Signature"
TIMESTAMP_HEADER = "X-DTN-Timestamp"
DELIVERY_HEADER = "X-DTN-Delivery"
EVENT_HEADER = "X-DTN-Event"
# How old a timestamp a receiver should accept (the recipe in the docs uses it).
TOLERANCE_SECONDS = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(secret: str, timestamp: str, signature_header: str, body: bytes,
           tolerance: int = TOLERANCE_SECONDS, now: float | None = None) -> bool:
    """What a receiver does: a fresh timestamp and a matching signature."""
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - sent_at) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, sent_at, body), signature_header or "")
