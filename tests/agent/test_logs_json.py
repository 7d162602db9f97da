"""The agent's DTN_LOG_FORMAT=json: one JSON object per line, its IDs as fields, secrets masked as in plain
lines. (Every line of a real run parsed: tests/e2e/test_metrics_and_logs.py.)"""

from __future__ import annotations

import io
import json
import logging

import pytest

from agent import logs


def _setup(log_format: str) -> io.StringIO:
    logs.setup("INFO", log_format)
    stream = io.StringIO()
    logging.getLogger().handlers[0].setStream(stream)
    return stream


@pytest.fixture(autouse=True)
def restore():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    logs.bind(container_id=None, transfer_id=None)


@pytest.fixture
def lines():
    stream = _setup("json")
    return lambda: [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_line_is_json_with_the_ids_bound_and_secrets_masked(lines):
    secret = "s3cr3t-key-value-xyz"
    logs.redact(secret)
    log = logging.getLogger("agent.test")
    log.info("before the first heartbeat")
    logs.bind(container_id="c-1")
    logs.bind(transfer_id="t-9")
    log.warning("uploading with key %s", secret, extra={"command_id": "k-3"})
    logs.bind(transfer_id=None)
    try:
        raise RuntimeError(f"boom {secret}")
    except RuntimeError:
        log.exception("failed")
    first, second, third = lines()
    assert (first["container_id"], first["transfer_id"], first["message"]) == (None, None, "before the first heartbeat")
    assert second["level"] == "WARNING" and second["logger"] == "agent.test" and second["time"]
    assert (second["container_id"], second["transfer_id"], second["command_id"]) == ("c-1", "t-9", "k-3")
    assert second["message"] == "uploading with key ***"
    assert (third["container_id"], third["transfer_id"]) == ("c-1", None)
    assert "boom ***" in third["exc_info"] and secret not in json.dumps(third)


def test_plain_stays_plain():
    stream = _setup("plain")
    logging.getLogger("agent.test").info("hello")
    line = stream.getvalue().strip()
    assert line.endswith("INFO agent.test hello") and not line.startswith("{")
