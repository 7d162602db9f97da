"""The agent's configuration: strict, with secrets kept out of reprs."""

from __future__ import annotations

import os

import pytest

from agent import config
from agent.config import ConfigError

TOKEN = "dtn_agent_0123456789ab_secretsecretsecret"


@pytest.fixture
def env(tmp_path):
    (tmp_path / "send").mkdir()
    binary = tmp_path / "rclone"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    return {"DTN_PORTAL_URL": "https://portal.example.org/", "DTN_AGENT_TOKEN": TOKEN,
            "DTN_SEND_DIR": str(tmp_path / "send"), "DTN_STATE_DIR": str(tmp_path / "state"),
            "DTN_RCLONE_BINARY": str(binary)}


def secrets_file(path, text, mode=0o600):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def test_a_complete_environment_loads_with_defaults(env, tmp_path):
    loaded = config.load(env)
    assert loaded.portal_url == "https://portal.example.org"
    assert loaded.agent_token.reveal() == TOKEN
    assert loaded.send_dir == (tmp_path / "send").resolve() and loaded.embedded_rcd
    assert (loaded.transfers, loaded.receiver_attempts, loaded.progress_seconds) == (4, 3, 1.0)


def test_secrets_never_show_in_the_config_repr(env):
    loaded = config.load({**env, "DTN_RCLONE_RC_URL": "http://rclone:5572", "DTN_RCLONE_RC_USER": "u",
                          "DTN_RCLONE_RC_PASS": "rc-password-123"})
    text = repr(loaded) + str(loaded.agent_token)
    assert TOKEN not in text and "rc-password-123" not in text


@pytest.mark.parametrize("change, words", [
    ({"DTN_PORTAL_URL": None}, "DTN_PORTAL_URL is required"),
    ({"DTN_PORTAL_URL": "portal.example.org"}, "http:// or https://"),
    ({"DTN_PORTAL_URL": "https://user:pw@portal.example.org"}, "must not carry a user or password"),
    ({"DTN_AGENT_TOKEN": None}, "DTN_AGENT_TOKEN is required"),
    ({"DTN_AGENT_TOKEN": "dtn_personal_x"}, "does not look like an agent token"),
    ({"DTN_SEND_DIR": None}, "DTN_SEND_DIR is required"),
    ({"DTN_SEND_DIR": "/no/such/folder"}, "not an existing directory"),
    ({"DTN_SEND_DIR": "relative/path"}, "absolute path"),
    ({"DTN_STATE_DIR": "state"}, "DTN_STATE_DIR must be an absolute path"),
    ({"DTN_TRANSFERS": "four"}, "DTN_TRANSFERS must be a whole number"),
    ({"DTN_TRANSFERS": "0"}, "between 1 and 256"),
    ({"DTN_PROGRESS_SECONDS": "5"}, "between 0.2 and 2"),
    ({"DTN_LOG_LEVEL": "LOUD"}, "DTN_LOG_LEVEL must be one of"),
    ({"DTN_RCLONE_BINARY": "/no/rclone"}, "no rclone binary at /no/rclone"),
    ({"DTN_RCLONE_RC_URL": "http://rclone:5572"}, "needs DTN_RCLONE_RC_USER and DTN_RCLONE_RC_PASS"),
    ({"DTN_RCLONE_RC_PASS": "p"}, "only for DTN_RCLONE_RC_URL"),
    ({"DTN_AGENT_TOKEN_FILE": "/no/file"}, "set DTN_AGENT_TOKEN or DTN_AGENT_TOKEN_FILE, not both"),
])
def test_a_bad_setting_is_refused_with_a_sentence_naming_it(env, change, words):
    assert words in refusal(env, change)


def refusal(env: dict, change: dict) -> str:
    """The ConfigError's sentence for `env` with `change` applied (None removes a variable)."""
    env = {**env, **{key: value for key, value in change.items() if value is not None}}
    for key in [key for key, value in change.items() if value is None]:
        del env[key]
    with pytest.raises(ConfigError) as refused:
        config.load(env)
    return str(refused.value)


def test_the_token_can_come_from_a_docker_secret_file(env, tmp_path):
    del env["DTN_AGENT_TOKEN"]
    (tmp_path / "token").write_text(TOKEN + "\n")
    loaded = config.load({**env, "DTN_AGENT_TOKEN_FILE": str(tmp_path / "token")})
    assert loaded.agent_token.reveal() == TOKEN


def test_the_token_can_come_from_the_0600_secrets_file_in_the_state_dir(env, tmp_path):
    del env["DTN_AGENT_TOKEN"]
    path = secrets_file(tmp_path / "state" / "secrets.env", f"# the agent's secrets\nDTN_AGENT_TOKEN='{TOKEN}'\n")
    loaded = config.load(env)
    assert loaded.agent_token.reveal() == TOKEN and loaded.secrets_file == path


def test_a_secrets_file_others_can_read_is_refused(env, tmp_path):
    secrets_file(tmp_path / "state" / "secrets.env", f"DTN_AGENT_TOKEN={TOKEN}\n", mode=0o644)
    with pytest.raises(ConfigError) as refused:
        config.load(env)
    assert "chmod 600" in str(refused.value)


def test_a_secrets_file_holds_only_the_secrets_it_is_for(env, tmp_path):
    secrets_file(tmp_path / "state" / "secrets.env", "DTN_PORTAL_URL=https://elsewhere\n")
    with pytest.raises(ConfigError) as refused:
        config.load(env)
    assert "'DTN_PORTAL_URL' is not a secret this file may hold" in str(refused.value)


def test_the_sidecar_settings_take_the_password_from_the_secrets_file(env, tmp_path):
    secrets_file(tmp_path / "state" / "secrets.env", "DTN_RCLONE_RC_PASS=from-file-pass\n")
    loaded = config.load({**env, "DTN_RCLONE_RC_URL": "http://rclone:5572", "DTN_RCLONE_RC_USER": "agent"})
    assert not loaded.embedded_rcd and loaded.rclone_rc_pass.reveal() == "from-file-pass"


def test_the_state_dir_is_made_private(env, tmp_path):
    loaded = config.load(env)
    config.prepare_state_dir(loaded.state_dir)
    assert oct(os.stat(loaded.state_dir).st_mode & 0o777) == "0o700"


@pytest.mark.parametrize("name, write, command", [
    ("DTN_SEND_DIR", False, "setfacl -R -m u:{uid}:rX -m d:u:{uid}:rX '/srv/dtn/my data'"),
    ("DTN_RECEIVE_DIR", True, "chown {uid}:{gid} '/srv/dtn/my data'"),
])
def test_a_folder_the_agent_cannot_use_is_refused_with_the_command_that_fixes_it(env, tmp_path, monkeypatch,
                                                                                   name, write, command):
    # As root every folder is usable, so the refusal is shown with os.access answering as for uid 10001;
    # the real case (a folder docker made, owned by root) runs in tests/deploy/engine.
    folder = tmp_path / "folder"
    folder.mkdir()
    env = {**env, name: str(folder), f"{name}_ON_HOST": "/srv/dtn/my data"}
    if name == "DTN_RECEIVE_DIR":
        env.pop("DTN_SEND_DIR")
    monkeypatch.setattr(config.os, "access", lambda path, mode: not mode & (os.W_OK if write else os.R_OK))
    with pytest.raises(ConfigError) as refused:
        config.load(env)
    expected = command.format(uid=os.geteuid(), gid=os.getegid())
    assert f"run `{expected}`" in str(refused.value)
    assert "(mounted from /srv/dtn/my data on the host)" in str(refused.value)
