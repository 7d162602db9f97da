"""The portal's settings module, started for real in a subprocess: its values come
through the strict reader (dtn_protocol.env, tested in tests/protocol/test_env.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


# --- The settings module, started for real -----------------------------------------------------


def _settings_process(state_dir, code, **env):
    clean = {key: value for key, value in os.environ.items()
             if not key.startswith("DTN_") and key != "DATABASE_URL"}
    clean.update({"DJANGO_SETTINGS_MODULE": "portal.settings", "DTN_STATE_DIR": str(state_dir), **env})
    return subprocess.run([sys.executable, "-c", f"import django; django.setup(); {code}"],
                          cwd=REPO, env=clean, capture_output=True, text=True, timeout=60)


def test_the_settings_generate_their_secrets_into_the_state_dir(tmp_path):
    code = "from django.conf import settings; print(settings.SECRET_KEY); print(settings.TOKEN_HMAC_KEY)"
    first = _settings_process(tmp_path, code)
    assert first.returncode == 0, first.stderr
    secret_key, hmac_key = first.stdout.split()
    assert secret_key == (tmp_path / "secrets" / "dtn_secret_key").read_text().strip()
    assert hmac_key == (tmp_path / "secrets" / "dtn_token_hmac_key").read_text().strip()
    assert secret_key != hmac_key

    again = _settings_process(tmp_path, code)
    assert again.stdout.split() == [secret_key, hmac_key]


def test_the_settings_refuse_a_malformed_flag(tmp_path):
    result = _settings_process(tmp_path, "pass", DTN_DEBUG="yes")
    assert result.returncode != 0
    assert "DTN_DEBUG must be 'true' or 'false'" in result.stderr


def test_the_settings_take_the_secret_key_from_a_name_file(tmp_path):
    secret_file = tmp_path / "secret-key"
    secret_file.write_text("k" * 60 + "\n")
    result = _settings_process(tmp_path, "from django.conf import settings; print(settings.SECRET_KEY)",
                               DTN_SECRET_KEY_FILE=str(secret_file))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "k" * 60
    assert not (tmp_path / "secrets" / "dtn_secret_key").exists()


def test_no_secret_has_a_default_in_the_settings_source():
    source = (REPO / "portal" / "settings.py").read_text()
    assert "django-insecure" not in source
    for line in source.splitlines():
        if line.startswith(("SECRET_KEY", "TOKEN_HMAC_KEY")):
            assert "env_secret(" in line, line


def test_the_mail_password_comes_from_a_name_file_and_not_from_both(tmp_path):
    password_file = tmp_path / "mail-password"
    password_file.write_text("s3cret-mail\n")
    code = "from django.conf import settings; print(settings.EMAIL_HOST_PASSWORD)"
    result = _settings_process(tmp_path, code, DTN_EMAIL_PASSWORD_FILE=str(password_file))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "s3cret-mail"
    both = _settings_process(tmp_path, code, DTN_EMAIL_PASSWORD_FILE=str(password_file), DTN_EMAIL_PASSWORD="other")
    assert both.returncode != 0
    assert "set DTN_EMAIL_PASSWORD or DTN_EMAIL_PASSWORD_FILE, not both" in both.stderr
