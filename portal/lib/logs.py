"""How the portal logs: plain lines, or (DTN_LOG_FORMAT=json) one JSON object per line, for Django's
loggers and gunicorn's and uvicorn's alike, so a log shipper never meets a line it cannot parse.

A transfer's events are logged with `transfer_id` and `container_id` (its sender) as fields of their own
(portal/transfers/models.py), which a JSON line carries as keys."""

from __future__ import annotations

import logging

from django.core.mail.backends import console
from pythonjsonlogger.core import RESERVED_ATTRS

FORMATS = ("plain", "json")
PLAIN = "%(asctime)s %(levelname)s %(name)s %(message)s"
JSON_FORMATTER = {
    "()": "pythonjsonlogger.json.JsonFormatter",
    "fmt": "%(levelname)s %(name)s %(message)s",
    "rename_fields": {"levelname": "level", "name": "logger"},
    # ISO 8601 in UTC, what a log shipper parses without being told the format.
    "timestamp": "time",
    # uvicorn's copy of its message with terminal colour codes.
    "reserved_attrs": [*RESERVED_ATTRS, "color_message"],
}


def formatter(log_format: str) -> dict:
    return dict(JSON_FORMATTER) if log_format == "json" else {"format": PLAIN}


def gunicorn_config(access_log: bool) -> dict:
    """gunicorn's logconfig_dict for JSON logs: its error and access logs (and uvicorn's, which its worker
    points at gunicorn's handlers) on standard error, as JSON lines."""
    handler = {"class": "logging.StreamHandler", "formatter": "dtn", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"dtn": formatter("json")},
        "handlers": {"console": handler},
        "root": {"level": "INFO", "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False, "qualname": "gunicorn.error"},
            "gunicorn.access": {"level": "INFO", "handlers": ["console"] if access_log else [], "propagate": False,
                                "qualname": "gunicorn.access"},
        },
    }


class LoggedMailBackend(console.EmailBackend):
    """DTN_EMAIL_BACKEND=console with JSON logs: each mail is one log line, its text a field."""

    def write_message(self, message):
        logging.getLogger("portal.mail").info("mail to %s", ", ".join(message.recipients()),
                                              extra={"mail": message.message().as_string()})
