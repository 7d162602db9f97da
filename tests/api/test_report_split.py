"""The agent's portal client splits a report the portal finds too large, and no file is lost: a real portal
taking at most 64 KiB per request, the real client, and the transfer's manifest at the end."""

from __future__ import annotations

import pytest
import requests

from agent.loop.portal import PortalClient
from tests.harness.portal import PortalServer

pytestmark = pytest.mark.e2e

FILES = 1500


def test_an_oversized_report_is_split_and_every_file_reaches_the_manifest():
    with PortalServer(DTN_WEB_WORKERS="1", DTN_MAX_REQUEST_BYTES=str(64 * 1024),
                      DTN_CLAIM_HOLD_SECONDS="0") as server:
        person = requests.Session()
        body = {"username": "alice", "email": "alice@example.org", "password": "a long enough passphrase"}
        assert person.post(f"{server.url}/api/v1/signup", json=body).status_code == 201
        token = person.post(f"{server.url}/api/v1/auth/token", json=body).json()["token"]
        person.headers["Authorization"] = f"Bearer {token}"
        sender = person.post(f"{server.url}/register", json={"name": "lab", "role": "sender"}).json()
        agent = PortalClient(server.url, sender["agent_token"], "inst-1")
        agent.heartbeat({})
        sent = person.post(f"{server.url}/api/v1/transfers", json={
            "sender": sender["container_id"], "sources": ["data"], "s3_host": "s3.example.org", "s3_port": 9000,
            "s3_tls": False, "s3_bucket": "archive", "s3_access_key": "AKIAEXAMPLE0001",
            "s3_secret_key": "example-secret-key-0001", "verify_checksums": False, "network_check": "skip"})
        assert sent.status_code == 201, sent.text
        command = agent.claim(0).command
        assert command is not None

        files = [{"path": f"data/{'folder/' * 10}file-{n:05d}.bin", "size": 10, "sha256": "a" * 64,
                  "outcome": "sent", "error": ""} for n in range(FILES)]
        progress = {"bytes": 10 * FILES, "total_bytes": 10 * FILES, "files_done": FILES, "files_total": FILES,
                    "files": files}
        reply = agent.report(command["command_id"], "succeeded", progress=progress)

        assert reply.state == "succeeded"
        manifest = person.get(f"{server.url}/api/v1/transfers/{sent.json()['transfer_id']}/manifest.json").json()
        assert sorted(row["path"] for row in manifest["manifest"]) == sorted(item["path"] for item in files)
        assert manifest["state"] == "succeeded"
