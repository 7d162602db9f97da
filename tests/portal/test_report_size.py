"""A large valid report is taken whole: the one body limit is DTN_MAX_REQUEST_BYTES at the server's edge
(tests/api/test_body_limit.py), not Django's 2.5 MB, which refused 2,000 files with long paths."""

from __future__ import annotations

import json

import pytest

from tests.portal.sending import checked_in, claim, grant, report, send

pytestmark = pytest.mark.usefixtures("agent_threads_db")


def long_path(n: int) -> str:
    return f"data/{'deep-folder-name/' * 80}file-{n:05d}.bin"


def test_a_3_mb_report_of_2000_files_is_accepted_whole(alice, alice_agent, alice_sender, bob_receiver):
    checked_in(bob_receiver)
    grant(bob_receiver, alice)
    transfer = send(alice, alice_sender, receiver=bob_receiver, sources=["data"])
    command_id = claim(alice_agent).json()["command_id"]
    files = [{"path": long_path(n), "size": 10, "sha256": "a" * 64, "receiver_sha256": "", "outcome": "sent",
              "error": ""} for n in range(2000)]
    progress = {"bytes": 20000, "total_bytes": 20000, "files_done": 2000, "files_total": 2000, "files": files}
    assert len(json.dumps(progress)) > 3_000_000

    response = report(alice_agent, command_id, "running", progress=progress)

    assert response.status_code == 200, response.content[:300]
    assert transfer.files.count() == 2000
