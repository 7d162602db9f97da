"""A receiver whose grants live in an external MinIO: DTN_RECEIVER_S3=minio and its settings."""

import datetime as dt

import pytest

from agent import config, tls
from agent.config import ConfigError, MinioReceiverConfig, ReceiverConfig
from tests.agent.test_config import env, refusal, secrets_file  # noqa: F401  (the base environment fixture)

ROOT_PASSWORD = "minio-root-password-0123"


@pytest.fixture
def public_crt(tmp_path):
    """A certificate like MinIO's certgen makes: self-signed, for the name senders use."""
    path = tmp_path / "certs" / "public.crt"
    tls.make_self_signed(path, tmp_path / "certs" / "private.key", ["receiver.example.org"], "MinIO")
    return path


@pytest.fixture
def minio(env, public_crt):  # noqa: F811
    del env["DTN_SEND_DIR"]
    return {**env, "DTN_RECEIVER_S3": "minio", "DTN_RECEIVER_MINIO_URL": "https://receiver.example.org:9000",
            "DTN_RECEIVER_MINIO_ROOT_USER": "minio-admin", "DTN_RECEIVER_MINIO_ROOT_PASSWORD": ROOT_PASSWORD,
            "DTN_RECEIVER_MINIO_CERT": str(public_crt)}


def test_a_minio_receiver_needs_no_folder_and_keeps_its_credentials_secret(minio, public_crt):
    loaded = config.load(minio)
    receiver = loaded.receiver
    assert isinstance(receiver, MinioReceiverConfig) and loaded.send_dir is None
    assert receiver.url == "https://receiver.example.org:9000" and receiver.cert_file == public_crt
    assert (receiver.root_user.reveal(), receiver.root_password.reveal()) == ("minio-admin", ROOT_PASSWORD)
    text = repr(loaded) + str(receiver.root_password)
    assert ROOT_PASSWORD not in text and "minio-admin" not in text


def test_a_site_that_only_receives_into_minio_needs_no_rclone_binary(minio):
    assert config.load({**minio, "DTN_RCLONE_BINARY": "/no/rclone"}).receiver is not None
    assert "no rclone binary" in refusal({**minio, "DTN_RCLONE_BINARY": "/no/rclone"}, {"DTN_SEND_DIR": "/"})


def test_the_default_and_an_explicit_rclone_are_todays_receiver(env, tmp_path):  # noqa: F811
    (tmp_path / "received").mkdir()
    receiving = {**env, "DTN_RECEIVE_DIR": str(tmp_path / "received")}
    assert config.load(receiving).receiver == config.load({**receiving, "DTN_RECEIVER_S3": "rclone"}).receiver
    assert isinstance(config.load(receiving).receiver, ReceiverConfig)


def test_plain_http_minio_takes_no_certificate(minio):
    del minio["DTN_RECEIVER_MINIO_CERT"]
    receiver = config.load({**minio, "DTN_RECEIVER_MINIO_URL": "http://10.0.0.5:9000"}).receiver
    assert receiver.url == "http://10.0.0.5:9000" and receiver.cert_file is None


def test_the_root_credentials_come_from_files_or_the_secrets_file(minio, tmp_path):
    del minio["DTN_RECEIVER_MINIO_ROOT_USER"], minio["DTN_RECEIVER_MINIO_ROOT_PASSWORD"]
    (tmp_path / "root-password").write_text(ROOT_PASSWORD + "\n")
    secrets_file(tmp_path / "state" / "secrets.env", "DTN_RECEIVER_MINIO_ROOT_USER=from-file-admin\n")
    receiver = config.load({**minio, "DTN_RECEIVER_MINIO_ROOT_PASSWORD_FILE": str(tmp_path / "root-password")}).receiver
    assert (receiver.root_user.reveal(), receiver.root_password.reveal()) == ("from-file-admin", ROOT_PASSWORD)


def test_a_wildcard_certificate_for_the_host_is_taken(minio, tmp_path):
    path = tmp_path / "wild" / "public.crt"
    tls.make_self_signed(path, tmp_path / "wild" / "private.key", ["*.example.org"], "MinIO")
    assert config.load({**minio, "DTN_RECEIVER_MINIO_CERT": str(path)}).receiver.cert_file == path


@pytest.mark.parametrize("change, words", [
    ({"DTN_RECEIVER_S3": "seaweedfs"}, "DTN_RECEIVER_S3 must be 'rclone' or 'minio'"),
    ({"DTN_RECEIVER_MINIO_URL": None}, "DTN_RECEIVER_MINIO_URL is required with DTN_RECEIVER_S3=minio"),
    ({"DTN_RECEIVER_MINIO_URL": "receiver.example.org:9000"}, "DTN_RECEIVER_MINIO_URL must be an http:// or https://"),
    ({"DTN_RECEIVER_MINIO_URL": "https://admin:pw@receiver.example.org"}, "must not carry a user or password"),
    ({"DTN_RECEIVER_MINIO_URL": "https://receiver.example.org:9000/bucket"}, "without a path"),
    ({"DTN_RECEIVER_MINIO_URL": "https://receiver.example.org:99999"}, "DTN_RECEIVER_MINIO_URL has no valid port"),
    ({"DTN_RECEIVER_MINIO_ROOT_USER": None}, "DTN_RECEIVER_MINIO_ROOT_USER is required"),
    ({"DTN_RECEIVER_MINIO_ROOT_PASSWORD": None}, "DTN_RECEIVER_MINIO_ROOT_PASSWORD is required"),
    ({"DTN_RECEIVER_MINIO_ROOT_PASSWORD": "short"}, "DTN_RECEIVER_MINIO_ROOT_PASSWORD is shorter than 8"),
    ({"DTN_RECEIVER_MINIO_CERT": None}, "DTN_RECEIVER_MINIO_CERT is required with an https://"),
    ({"DTN_RECEIVER_MINIO_CERT": "certs/public.crt"}, "DTN_RECEIVER_MINIO_CERT must be an absolute path"),
    ({"DTN_RECEIVER_MINIO_CERT": "/no/public.crt"}, "DTN_RECEIVER_MINIO_CERT=/no/public.crt cannot be read"),
    ({"DTN_RECEIVER_MINIO_URL": "http://receiver.example.org:9000"}, "DTN_RECEIVER_MINIO_CERT is for an https://"),
    ({"DTN_RECEIVER_MINIO_URL": "https://other.example.net:9000"}, "is not made for other.example.net"),
    # The rclone servers' settings mean nothing here: refused, not ignored.
    ({"DTN_RECEIVE_DIR": "/srv/incoming"}, "DTN_RECEIVE_DIR is for DTN_RECEIVER_S3=rclone"),
    ({"DTN_RECEIVER_HOST": "receiver.example.org"}, "DTN_RECEIVER_HOST is for DTN_RECEIVER_S3=rclone"),
    ({"DTN_RECEIVER_BIND": "0.0.0.0"}, "DTN_RECEIVER_BIND is for DTN_RECEIVER_S3=rclone"),
    ({"DTN_RECEIVER_PORT": "9443"}, "DTN_RECEIVER_PORT is for DTN_RECEIVER_S3=rclone"),
    ({"DTN_RECEIVER_TLS": "true"}, "DTN_RECEIVER_TLS is for DTN_RECEIVER_S3=rclone"),
])
def test_a_bad_minio_setting_is_refused_with_a_sentence_naming_it(minio, change, words):
    sentence = refusal(minio, change)
    assert words in sentence and ROOT_PASSWORD not in sentence


def test_a_certificate_that_is_not_pem_or_has_expired_is_refused(minio, tmp_path):
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="is not a PEM certificate"):
        config.load({**minio, "DTN_RECEIVER_MINIO_CERT": str(garbage)})
    old = tmp_path / "old" / "public.crt"
    tls.make_self_signed(old, tmp_path / "old" / "private.key", ["receiver.example.org"], "MinIO",
                         now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=400))
    with pytest.raises(ConfigError, match="expired on"):
        config.load({**minio, "DTN_RECEIVER_MINIO_CERT": str(old)})


@pytest.mark.parametrize("name, value", [
    ("DTN_RECEIVER_MINIO_URL", "https://receiver.example.org:9000"),
    ("DTN_RECEIVER_MINIO_ROOT_USER", "minio-admin"),
    ("DTN_RECEIVER_MINIO_ROOT_PASSWORD", ROOT_PASSWORD),
    ("DTN_RECEIVER_MINIO_ROOT_PASSWORD_FILE", "/run/secrets/minio"),
    ("DTN_RECEIVER_MINIO_CERT", "/etc/minio/public.crt"),
])
def test_minio_settings_without_minio_are_refused(env, tmp_path, name, value):  # noqa: F811
    (tmp_path / "received").mkdir()
    for receiving in (env, {**env, "DTN_RECEIVE_DIR": str(tmp_path / "received")}):
        with pytest.raises(ConfigError) as refused:
            config.load({**receiving, name: value})
        assert f"{name.removesuffix('_FILE')} is for DTN_RECEIVER_S3=minio" in str(refused.value)


def test_a_minio_secret_in_the_secrets_file_of_an_rclone_receiver_is_refused(env, tmp_path):  # noqa: F811
    secrets_file(tmp_path / "state" / "secrets.env", f"DTN_RECEIVER_MINIO_ROOT_PASSWORD={ROOT_PASSWORD}\n")
    with pytest.raises(ConfigError, match="DTN_RECEIVER_MINIO_ROOT_PASSWORD is for DTN_RECEIVER_S3=minio"):
        config.load(env)


def test_rclone_named_without_a_receive_folder_is_refused(env):  # noqa: F811
    with pytest.raises(ConfigError, match="DTN_RECEIVER_S3 is for a receiver: set DTN_RECEIVE_DIR too"):
        config.load({**env, "DTN_RECEIVER_S3": "rclone"})
