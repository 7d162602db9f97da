"""Secrets at rest: S3 secret keys are stored as Fernet ciphertext under the keys
in DTN_ENCRYPTION_KEYS (newest first), and `rotate_encryption` re-encrypts them
all under the newest key so the old one can be dropped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from dtn_protocol.env import ConfigError
from portal.grants.models import Grant
from portal.lib import crypto
from portal.transfers.models import Transfer
from tests.portal.sending import HAND_S3, HAND_SECRET, checked_in, grant, send

REPO = Path(__file__).resolve().parents[2]


def new_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def old_key(settings):
    key = new_key()
    settings.DTN_ENCRYPTION_KEYS = [key]
    return key


@pytest.fixture
def secrets_under_old_key(old_key, alice, alice_sender, bob_receiver):
    """A grant's secret and a hand-entered secret, both encrypted under old_key."""
    checked_in(bob_receiver)
    the_grant = grant(bob_receiver, alice)
    by_hand = send(alice, alice_sender, s3=HAND_S3)
    return the_grant, the_grant.secret_key(), by_hand


def test_a_grant_secret_is_stored_only_as_ciphertext(old_key, alice, bob_receiver):
    the_grant = grant(bob_receiver, alice)
    stored = Grant.objects.values_list("secret_key_encrypted", flat=True).get(pk=the_grant.pk)
    plaintext = the_grant.secret_key()
    assert len(plaintext) >= 32
    assert plaintext not in stored
    assert Fernet(old_key).decrypt(stored.encode()).decode() == plaintext


def test_a_hand_entered_secret_is_stored_only_as_ciphertext(old_key, alice, alice_sender):
    transfer = send(alice, alice_sender, s3=HAND_S3)
    stored = Transfer.objects.values_list("s3_secret_key_encrypted", flat=True).get(pk=transfer.pk)
    assert HAND_SECRET not in stored
    assert crypto.decrypt(stored) == HAND_SECRET


def test_two_encryptions_of_one_secret_differ(old_key):
    assert crypto.encrypt("same") != crypto.encrypt("same")


def test_any_listed_key_decrypts_and_the_newest_encrypts(settings, old_key):
    under_old = crypto.encrypt("s3cret")
    newest = new_key()
    settings.DTN_ENCRYPTION_KEYS = [newest, old_key]
    assert crypto.decrypt(under_old) == "s3cret"
    under_new = crypto.encrypt("s3cret")
    Fernet(newest).decrypt(under_new.encode())
    with pytest.raises(Exception):
        Fernet(old_key).decrypt(under_new.encode())


def test_without_its_key_a_secret_cannot_be_read(settings, old_key):
    ciphertext = crypto.encrypt("s3cret")
    settings.DTN_ENCRYPTION_KEYS = [new_key()]
    with pytest.raises(crypto.DecryptionError) as excinfo:
        crypto.decrypt(ciphertext)
    assert "s3cret" not in str(excinfo.value)


def test_rotation_re_encrypts_every_secret_under_the_newest_key(settings, old_key, secrets_under_old_key, capsys):
    the_grant, grant_secret, by_hand = secrets_under_old_key
    before = (Grant.objects.get(pk=the_grant.pk).secret_key_encrypted,
              Transfer.objects.get(pk=by_hand.pk).s3_secret_key_encrypted)
    newest = new_key()
    settings.DTN_ENCRYPTION_KEYS = [newest, old_key]

    call_command("rotate_encryption")
    assert "re-encrypted 2 secret(s)" in capsys.readouterr().out

    the_grant.refresh_from_db()
    by_hand.refresh_from_db()
    assert (the_grant.secret_key_encrypted, by_hand.s3_secret_key_encrypted) != before
    # The old key can now be dropped: the newest alone reads both secrets...
    settings.DTN_ENCRYPTION_KEYS = [newest]
    assert the_grant.secret_key() == grant_secret
    assert crypto.decrypt(by_hand.s3_secret_key_encrypted) == HAND_SECRET
    # ...and the old key alone reads neither.
    settings.DTN_ENCRYPTION_KEYS = [old_key]
    with pytest.raises(crypto.DecryptionError):
        the_grant.secret_key()
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(by_hand.s3_secret_key_encrypted)


def test_rotation_finds_every_encrypted_column_by_its_type():
    found = {(model._meta.label, name) for model, name in crypto.ciphertext_fields()}
    assert found == {("grants.Grant", "secret_key_encrypted"), ("transfers.Transfer", "s3_secret_key_encrypted"),
                     ("notifications.NotificationSettings", "webhook_secret_encrypted")}


def test_rotation_re_encrypts_webhook_signing_secrets_too(settings, old_key, alice):
    from portal.notifications import services
    from portal.notifications.models import NotificationSettings

    _, secret = services.update(alice, {"webhook_url": "https://hooks.example.org/dtn"})
    newest = new_key()
    settings.DTN_ENCRYPTION_KEYS = [newest, old_key]
    call_command("rotate_encryption")
    settings.DTN_ENCRYPTION_KEYS = [newest]
    assert NotificationSettings.objects.get(user=alice).webhook_secret() == secret


def test_rotation_leaves_rows_without_a_secret_alone(settings, old_key, alice, alice_sender, bob_receiver, capsys):
    checked_in(bob_receiver)
    grant(bob_receiver, alice)
    by_grant = send(alice, alice_sender, receiver=bob_receiver)
    settings.DTN_ENCRYPTION_KEYS = [new_key(), old_key]
    call_command("rotate_encryption")
    assert "re-encrypted 1 secret(s)" in capsys.readouterr().out
    by_grant.refresh_from_db()
    assert by_grant.s3_secret_key_encrypted == ""


def test_rotation_names_secrets_no_key_opens_and_fails(settings, secrets_under_old_key):
    the_grant, grant_secret, _ = secrets_under_old_key
    settings.DTN_ENCRYPTION_KEYS = [new_key()]  # the old key was dropped too early
    with pytest.raises(CommandError) as excinfo:
        call_command("rotate_encryption")
    message = str(excinfo.value)
    assert "2 secret(s) open with no configured key" in message
    assert str(the_grant.pk) in message
    assert grant_secret not in message
    assert Grant.objects.get(pk=the_grant.pk).secret_key_encrypted == the_grant.secret_key_encrypted


def test_the_key_list_is_read_newest_first_and_checked():
    first, second = new_key(), new_key()
    assert crypto.parse_keys(f" {first} , {second},") == [first, second]


@pytest.mark.parametrize("raw", ["", " , ", "not-a-key", "c2hvcnQ="])
def test_a_malformed_key_list_stops_the_process_without_echoing_it(raw):
    with pytest.raises(ConfigError) as excinfo:
        crypto.parse_keys(raw)
    assert "DTN_ENCRYPTION_KEYS" in str(excinfo.value)
    if raw.strip(" ,"):
        assert raw not in str(excinfo.value)


def settings_keys(state_dir, **env) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items()
             if not key.startswith("DTN_") and key not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    clean.update({"DTN_STATE_DIR": str(state_dir), "DJANGO_SETTINGS_MODULE": "portal.settings", **env})
    code = "from django.conf import settings; print(','.join(settings.DTN_ENCRYPTION_KEYS))"
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=clean, capture_output=True, text=True,
                          timeout=60)


def test_without_configuration_a_key_is_generated_once_into_the_state_dir(tmp_path):
    first = settings_keys(tmp_path)
    assert first.returncode == 0, first.stderr
    stored = tmp_path / "secrets" / "dtn_encryption_keys"
    assert stored.read_text().strip() == first.stdout.strip()
    assert oct(stored.stat().st_mode & 0o777) == "0o600"
    Fernet(first.stdout.strip())
    assert settings_keys(tmp_path).stdout == first.stdout


def test_keys_come_from_the_environment_or_a_file(tmp_path):
    first, second = new_key(), new_key()
    assert settings_keys(tmp_path, DTN_ENCRYPTION_KEYS=f"{first},{second}").stdout.strip() == f"{first},{second}"
    key_file = tmp_path / "keys"
    key_file.write_text(f"{second}\n")
    assert settings_keys(tmp_path, DTN_ENCRYPTION_KEYS_FILE=str(key_file)).stdout.strip() == second
    assert not (tmp_path / "secrets" / "dtn_encryption_keys").exists()


def test_a_malformed_key_in_the_environment_stops_the_portal(tmp_path):
    result = settings_keys(tmp_path, DTN_ENCRYPTION_KEYS="oops-not-a-key")
    assert result.returncode != 0
    assert "DTN_ENCRYPTION_KEYS: key 1 is not a Fernet key" in result.stderr
    assert "oops-not-a-key" not in result.stderr
