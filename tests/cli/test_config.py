"""Where `dtn` keeps its sign-in, without a server."""

from __future__ import annotations

import json
import stat

import pytest

from portal.cli import config


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in ("DTN_CONFIG_DIR", "DTN_TOKEN", "DTN_PORTAL", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return monkeypatch


def test_the_file_lives_under_dtn_config_dir_then_xdg_then_home(clean_env, tmp_path):
    assert config.credentials_path() == tmp_path / "home" / ".config" / "dtn" / "credentials.json"
    clean_env.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config.credentials_path() == tmp_path / "xdg" / "dtn" / "credentials.json"
    clean_env.setenv("DTN_CONFIG_DIR", str(tmp_path / "mine"))
    assert config.credentials_path() == tmp_path / "mine" / "credentials.json"


def test_saved_0600_in_a_0700_folder_and_read_back(clean_env, tmp_path):
    path = config.save("https://p.example.org", "dtn_secret", "alice")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {"portal": "https://p.example.org", "token": "dtn_secret",
                                            "username": "alice"}
    assert [p.name for p in path.parent.iterdir()] == ["credentials.json"]  # no temporary file left
    loaded = config.load()
    assert (loaded.portal, loaded.token, loaded.username) == ("https://p.example.org", "dtn_secret", "alice")


def test_the_environment_overrides_the_file(clean_env):
    config.save("https://p.example.org/", "from-file", "alice")
    clean_env.setenv("DTN_TOKEN", "from-env")
    loaded = config.load()
    assert (loaded.portal, loaded.token, loaded.source) == ("https://p.example.org", "from-env", "environment")
    clean_env.setenv("DTN_PORTAL", "http://other:8000/")
    assert config.load().portal == "http://other:8000"


def test_nothing_to_sign_in_with_or_a_broken_file_is_a_configuration_error(clean_env):
    with pytest.raises(config.ConfigError, match="dtn login"):
        config.load()
    clean_env.setenv("DTN_TOKEN", "t")
    with pytest.raises(config.ConfigError, match="portal URL"):
        config.load()
    config.credentials_path().parent.mkdir(parents=True)
    config.credentials_path().write_text("not json")
    with pytest.raises(config.ConfigError, match="cannot read"):
        config.load()


def test_a_file_others_can_read_is_still_used_with_a_warning(clean_env, capsys):
    path = config.save("https://p.example.org", "dtn_secret", "alice")
    path.chmod(0o644)
    assert config.load().token == "dtn_secret"
    assert "chmod 600" in capsys.readouterr().err
    path.chmod(0o600)
    config.load()
    assert capsys.readouterr().err == ""
