"""Logging for the agent: plain lines on stderr (or, DTN_LOG_FORMAT=json, one JSON object per line), with
every known secret masked.

A JSON line always carries `container_id` (null until the portal's first heartbeat answer names it) and
`transfer_id` (the transfer whose command this agent runs, else null): the agent runs one command at a
time, so what any of its threads logs meanwhile, rclone's output included, belongs to that transfer.

The code never logs a secret on purpose; masking the formatted line (message
and traceback alike) is the second line of defence, for the text nobody
thought about: an exception, a URL, rclone's output.
"""

from __future__ import annotations

import logging
import sys
import threading

from pythonjsonlogger.json import JsonFormatter

MIN_SECRET_LENGTH = 6
_secrets: set[str] = set()
_lock = threading.Lock()
# Fields every line carries (None until known), set by bind() for the whole process.
_fields: dict[str, str | None] = {"container_id": None, "transfer_id": None}


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


def bind(**fields: str | None) -> None:
    """Put these fields on every line from now on (None takes one off again)."""
    with _lock:
        _fields.update({name: None if value is None else str(value) for name, value in fields.items()})


def bound(name: str) -> str | None:
    with _lock:
        return _fields.get(name)


class _Fields(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        with _lock:
            fields = dict(_fields)
        for name, value in fields.items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))


class RedactingJsonFormatter(JsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))


def setup(level: str, log_format: str = "plain") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(RedactingJsonFormatter(
            "%(levelname)s %(name)s %(message)s", timestamp="time",
            rename_fields={"levelname": "level", "name": "logger"}))
        logging.captureWarnings(True)
    else:
        handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(_Fields())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
