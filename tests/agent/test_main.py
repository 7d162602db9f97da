"""`python -m agent`: configuration errors, the instance id, exit statuses."""

from __future__ import annotations

import signal

import pytest

from agent.app import EXIT_CONFIG, EXIT_OK
from agent.config import ConfigError
from agent.identity import instance_id
from tests.harness import Agent, wait_for

TOKEN = "dtn_agent_0123456789ab_secretsecretsecret"
# No portal listens on port 9.
NOWHERE = "http://127.0.0.1:9"


def agent(tmp_path, token: str | None = None, **env) -> Agent:
    send = tmp_path / "send"
    send.mkdir(exist_ok=True)
    return Agent(NOWHERE, token, send, tmp_path / "state", tmp_path, **env)


def test_a_configuration_error_exits_2_with_a_sentence_and_no_traceback(tmp_path):
    done = agent(tmp_path).run()
    assert done.returncode == EXIT_CONFIG
    assert done.stderr.strip() == ("dtn-agent: configuration error: DTN_AGENT_TOKEN is required (in the "
                                   "environment, in DTN_AGENT_TOKEN_FILE, or in the secrets file)")


def test_check_config_accepts_a_token_from_the_secrets_file_and_logs_no_secret(tmp_path):
    state = tmp_path / "state"
    done = agent(tmp_path, TOKEN, DTN_LOG_LEVEL="DEBUG").run("--check-config")
    assert done.returncode == EXIT_OK, done.stderr
    assert "configuration is valid" in done.stdout and TOKEN not in done.stdout + done.stderr
    assert (state / "instance_id").exists()


def test_the_instance_id_is_made_once_and_kept(tmp_path):
    first = instance_id(tmp_path)
    assert first == instance_id(tmp_path) and len(first) == 32
    (tmp_path / "instance_id").write_text("not valid!\n")
    with pytest.raises(ConfigError):
        instance_id(tmp_path)


def test_an_unreachable_portal_is_retried_and_sigterm_ends_the_agent_cleanly(tmp_path):
    """No portal listens on port 9: the agent backs off and keeps trying; SIGTERM ends it with 0."""
    process = agent(tmp_path, DTN_AGENT_TOKEN=TOKEN).start()
    try:
        wait_for(lambda: "portal unavailable" in process.log(), 60, "the agent to find the portal unavailable")
        process.signal(signal.SIGTERM)
        code = process.wait(20)
        rest = process.log()
        assert code == EXIT_OK, rest
    finally:
        process.stop()
    text = rest
    assert "next try in" in text and "stopped" in text and TOKEN not in text


def test_a_second_agent_on_the_same_state_dir_is_refused(tmp_path):
    from agent import identity as entry
    from agent.config import ConfigError

    entry.lock_state_dir(tmp_path)
    held, entry._state_lock = entry._state_lock, None
    try:
        import subprocess
        import sys

        probe = ("import sys; from pathlib import Path; from agent.identity import lock_state_dir;"
                 "from agent.config import ConfigError\n"
                 "try:\n    lock_state_dir(Path(sys.argv[1]))\nexcept ConfigError as e:\n    print(e); sys.exit(2)")
        result = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True)
        assert result.returncode == 2 and "another agent is running" in result.stdout
    finally:
        held.close()
    assert ConfigError
