"""The rc client over a fake transport, and the real `rclone rcd` the agent runs."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
import requests

from agent.rclone import JobNotFound, RcAuthError, RcClient, RcdProcess, RcError, RcUnavailable
from tests.agent.fakes import FakeResponse, FakeSession

RCLONE = Path(sys.executable).parent / "rclone"
SECRET = "receiver-secret-9f8e7d6c5b4a"


def test_an_rclone_error_keeps_its_message_and_drops_the_echoed_parameters():
    # rclone repeats the call's parameters under "input": the receiver's keys among them.
    body = {"error": "operation error S3: ListObjects, StatusCode: 403, InvalidAccessKeyId",
            "input": {"fs": {"type": "s3", "secret_access_key": SECRET}}, "path": "operations/stat", "status": 500}
    rc = RcClient("http://127.0.0.1:1", "u", "p", session=FakeSession(FakeResponse(500, body)))
    with pytest.raises(RcError) as raised:
        rc.stat({"type": "s3", "secret_access_key": SECRET}, "x")
    assert "InvalidAccessKeyId" in raised.value.message
    assert SECRET not in str(raised.value) and SECRET not in repr(raised.value.args)


@pytest.mark.parametrize("answer, kind", [
    (requests.ConnectionError("refused"), RcUnavailable),
    (FakeResponse(401, None), RcAuthError),
    (FakeResponse(500, {"error": "job not found"}), JobNotFound),
])
def test_rc_failures_are_told_apart(answer, kind):
    rc = RcClient("http://127.0.0.1:1", "u", "p", session=FakeSession(answer))
    with pytest.raises(kind):
        rc.job_status(3)


def test_an_async_copy_sends_group_and_config_in_the_body():
    session = FakeSession(FakeResponse(200, {"jobid": 7, "executeId": "e1"}))
    rc = RcClient("http://127.0.0.1:5572/", "u", "p", session=session)
    job = rc.copy_dir({"type": "local", "_root": "/d"}, {"type": "s3"}, group="dtn-c-0", config={"Transfers": 4})
    sent = session.requests[0]
    assert sent["url"] == "http://127.0.0.1:5572/sync/copy" and sent["auth"] == ("u", "p")
    assert sent["json"] == {"srcFs": {"type": "local", "_root": "/d"}, "dstFs": {"type": "s3"}, "_async": True,
                            "_group": "dtn-c-0", "_config": {"Transfers": 4}}
    assert (job.jobid, job.execute_id) == (7, "e1")


@pytest.fixture
def rcd(tmp_path, monkeypatch):
    # An operator's variables must not reach rclone: neither the agent's token nor RCLONE_* flags.
    monkeypatch.setenv("DTN_AGENT_TOKEN", "dtn_agent_should_not_leak")
    monkeypatch.setenv("RCLONE_RC_NO_AUTH", "true")
    process = RcdProcess(RCLONE, tmp_path / "state")
    process.start()
    yield process
    process.stop()


def test_the_rcd_it_starts_listens_on_loopback_and_refuses_calls_without_its_credentials(rcd):
    assert rcd.url.startswith("http://127.0.0.1:")
    assert rcd.client.version().startswith("v1.")
    assert requests.post(f"{rcd.url}/core/version", timeout=5).status_code == 401
    assert requests.post(f"{rcd.url}/core/version", auth=("dtn-agent", "wrong"), timeout=5).status_code == 401
    # `operations/list` needs auth even where --rc-no-auth would have waived it.
    assert requests.post(f"{rcd.url}/operations/list", json={"fs": "/", "remote": ""}, timeout=5).status_code == 401


def test_its_password_is_in_its_environment_only_and_its_config_is_in_memory(rcd):
    argv = Path(f"/proc/{rcd.pid}/cmdline").read_bytes().split(b"\0")
    assert rcd._password.encode() not in b" ".join(argv)
    assert b"--rc-no-auth" not in argv and argv[argv.index(b"--config") + 1] == os.devnull.encode()
    environ = Path(f"/proc/{rcd.pid}/environ").read_bytes().split(b"\0")
    assert f"RCLONE_RC_PASS={rcd._password}".encode() in environ
    assert not any(v.startswith((b"DTN_", b"RCLONE_RC_NO_AUTH")) for v in environ)


def test_a_dead_rcd_is_started_again_and_answers_the_same_client(rcd):
    first = rcd.pid
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if rcd.pid not in (None, first):
            try:
                rcd.client.version()
                break
            except RcError:
                pass
        time.sleep(0.1)
    assert rcd.pid not in (None, first) and rcd.restarts == 1
    assert rcd.client.version().startswith("v1.")


def test_stop_ends_the_rcd(tmp_path):
    process = RcdProcess(RCLONE, tmp_path / "state")
    process.start()
    pid = process.pid
    process.stop()
    assert process.pid is None
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_a_binary_that_cannot_run_is_a_clear_error(tmp_path):
    process = RcdProcess(tmp_path / "no-rclone", tmp_path / "state")
    with pytest.raises(RuntimeError) as failed:
        process.start()
    assert "cannot run" in str(failed.value)
