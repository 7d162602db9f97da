"""`python -m agent`: configuration errors, the instance id, exit statuses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.app import EXIT_CONFIG, EXIT_OK
from agent.config import ConfigError
from agent.identity import instance_id

REPO = Path(__file__).resolve().parents[2]
TOKEN = "dtn_agent_0123456789ab_secretsecretsecret"


def run_agent(env: dict, *args) -> subprocess.CompletedProcess:
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run([sys.executable, "-m", "agent", *args], env={**base, **env}, cwd=REPO,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def env(tmp_path):
    (tmp_path / "send").mkdir()
    return {"DTN_PORTAL_URL": "http://127.0.0.1:9", "DTN_SEND_DIR": str(tmp_path / "send"),
            "DTN_STATE_DIR": str(tmp_path / "state")}


def test_a_configuration_error_exits_2_with_a_sentence_and_no_traceback(env):
    done = run_agent(env)
    assert done.returncode == EXIT_CONFIG
    assert done.stderr.strip() == ("dtn-agent: configuration error: DTN_AGENT_TOKEN is required (in the "
                                   "environment, in DTN_AGENT_TOKEN_FILE, or in the secrets file)")


def test_check_config_accepts_a_token_from_the_secrets_file_and_logs_no_secret(env, tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    secrets = state / "secrets.env"
    secrets.write_text(f"DTN_AGENT_TOKEN={TOKEN}\n")
    secrets.chmod(0o600)
    done = run_agent({**env, "DTN_LOG_LEVEL": "DEBUG"}, "--check-config")
    assert done.returncode == EXIT_OK, done.stderr
    assert "configuration is valid" in done.stdout and TOKEN not in done.stdout + done.stderr
    assert (state / "instance_id").exists()


def test_the_instance_id_is_made_once_and_kept(tmp_path):
    first = instance_id(tmp_path)
    assert first == instance_id(tmp_path) and len(first) == 32
    (tmp_path / "instance_id").write_text("not valid!\n")
    with pytest.raises(ConfigError):
        instance_id(tmp_path)


def test_an_unreachable_portal_is_retried_and_sigterm_ends_the_agent_cleanly(env, tmp_path):
    """No portal listens on port 9: the agent backs off and keeps trying; SIGTERM ends it with 0."""
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "DTN_AGENT_TOKEN": TOKEN}
    process = subprocess.Popen([sys.executable, "-m", "agent"], env={**base, **env}, cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "portal unavailable" in line:
                break
        process.terminate()
        code = process.wait(20)
        rest = process.stdout.read()
        assert code == EXIT_OK, rest
    finally:
        if process.poll() is None:
            process.kill()
    text = "".join(lines) + rest
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
