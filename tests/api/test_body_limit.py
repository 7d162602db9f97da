"""The one body limit, DTN_MAX_REQUEST_BYTES (16 MiB), at a real server's edge (portal/asgi.py): larger bodies
get a JSON 413 whether their length is declared or they come chunked; smaller ones reach the API."""

from __future__ import annotations

import json

import pytest
import requests

from tests.harness.portal import PortalServer

pytestmark = pytest.mark.e2e

TWENTY_MB = 20 * 1024 * 1024


@pytest.fixture(scope="module")
def server():
    with PortalServer(DTN_WEB_WORKERS="1") as portal:
        yield portal


def assert_json_413(response):
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "field"} and "larger than 16777216 bytes" in body["error"]


def test_a_20_mb_body_is_a_json_413(server):
    body = b'{"username": "' + b"x" * TWENTY_MB + b'"}'
    response = requests.post(f"{server.url}/api/v1/signup", data=body,
                             headers={"Content-Type": "application/json"}, timeout=60)
    assert_json_413(response)


def test_a_20_mb_chunked_body_is_a_json_413_too(server):
    def chunks():
        yield b'{"username": "'
        for _ in range(TWENTY_MB // 65536):
            yield b"x" * 65536
        yield b'"}'

    response = requests.post(f"{server.url}/api/agent/v1/heartbeat", data=chunks(),
                             headers={"Content-Type": "application/json", "Authorization": "Bearer dtn_agent_x"},
                             timeout=60)
    assert_json_413(response)
    assert requests.get(f"{server.url}/healthz", timeout=5).status_code == 200


def test_a_3_mb_body_reaches_the_api(server):
    body = json.dumps({"username": "x" * 3_000_000, "password": "y"})
    response = requests.post(f"{server.url}/api/v1/signup", data=body, headers={"Content-Type": "application/json"},
                             timeout=60)
    # Refused by the API's own rule (a username's length), in its words: the body itself was taken.
    assert response.status_code == 400
    assert response.json()["field"] == "username"
