"""Logging for the agent: plain lines on stderr, with every known secret masked.

The code never logs a secret on purpose; masking the formatted line (message
and traceback alike) is the second line of defence, for the text nobody
thought about: an exception, a URL, rclone's output.
"""

from __future__ import annotations

import logging
import sys
import threading

MIN_SECRET_LENGTH = 6
_secrets: set[str] = set()
_lock = threading.Lock()


def redact(value: str | None) -> None:
    """Mask this value in every log line from now on."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _lock:
            _secrets.add(value)


def mask(text: str) -> str:
    with _lock:
        known = list(_secrets)
    for secret in known:
        if secret in text:
            text = text.replace(secret, "***")
    return text


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))


def setup(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
