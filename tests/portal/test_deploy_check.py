"""`manage.py check --deploy --fail-level WARNING` passes with production
settings and fails when TLS hardening is off. Run as a real process, with an
environment that holds only what is given here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def deploy_check(state_dir, **env):
    clean = {key: value for key, value in os.environ.items()
             if not key.startswith("DTN_") and key not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    clean.update({"DTN_DEBUG": "false", "DTN_ALLOWED_HOSTS": "portal.example.org", "DTN_STATE_DIR": str(state_dir),
                  **env})
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=REPO, env=clean, capture_output=True, text=True, timeout=120)


def test_the_deploy_check_passes_with_production_settings(tmp_path):
    result = deploy_check(tmp_path, DTN_SECURE="true")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
    # No secret was given: the generated ones were strong enough.
    assert (tmp_path / "secrets" / "dtn_secret_key").exists()


def test_the_deploy_check_fails_without_tls_hardening(tmp_path):
    result = deploy_check(tmp_path, DTN_SECURE="false")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in output


def test_the_deploy_check_fails_with_debug_on(tmp_path):
    result = deploy_check(tmp_path, DTN_SECURE="true", DTN_DEBUG="true")
    assert result.returncode != 0
    assert "security.W018" in result.stdout + result.stderr


def test_the_deploy_check_fails_with_a_weak_secret_key_from_the_environment(tmp_path):
    result = deploy_check(tmp_path, DTN_SECURE="true", DTN_SECRET_KEY="short")
    assert result.returncode != 0
    assert "security.W009" in result.stdout + result.stderr
