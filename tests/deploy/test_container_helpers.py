"""The small programs the containers run besides the services: the agent's and rclone's health
checks (agent/health.py), the portal's (portal/lib/healthcheck.py), the portal's self-signed
certificate (portal/lib/selfsigned.py), and the MinIO profile's guard against default credentials."""

from __future__ import annotations

import datetime as dt
import os
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from cryptography import x509

from agent import health
from portal.lib import healthcheck, selfsigned
from tests.deploy.compose import COMPOSE_FILES, load
from tests.tools.net import free_port

# --- the agent's health -----------------------------------------------------------------------------


def test_the_agent_is_healthy_while_its_heartbeats_are_recent(tmp_path):
    assert health.check_agent(tmp_path) == (False, f"no heartbeat accepted yet ({tmp_path / 'heartbeat'} is missing)")
    health.mark(tmp_path, 15)
    ok, why = health.check_agent(tmp_path)
    assert ok, why
    # Three intervals and the grace: 3 * 15 + 30 = 75 s.
    assert health.check_agent(tmp_path, now=time.time() + 70)[0]
    ok, why = health.check_agent(tmp_path, now=time.time() + 80)
    assert not ok and "more than 75 s" in why
    # The interval the portal chose is the one that counts.
    health.mark(tmp_path, 2)
    assert not health.check_agent(tmp_path, now=time.time() + 40)[0]
    assert [p.name for p in tmp_path.iterdir()] == ["heartbeat"]


def test_the_agent_health_command_reads_the_state_dir(tmp_path, capsys):
    assert health.main([], environ={"DTN_STATE_DIR": str(tmp_path)}) == 1
    health.mark(tmp_path, 15)
    assert health.main([], environ={"DTN_STATE_DIR": str(tmp_path)}) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("healthy: last heartbeat accepted")


class _Rc(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        import base64

        good = "Basic " + base64.b64encode(b"u:p").decode()
        self.send_response(200 if self.headers.get("Authorization") == good else 401)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def rc_server():
    server = HTTPServer(("127.0.0.1", 0), _Rc)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_the_rclone_check_needs_the_right_credentials(rc_server):
    assert health.check_rclone(rc_server, "u", "p") == (True, "rclone rc answers")
    assert health.check_rclone(rc_server, "u", "wrong") == (False, "rclone rc answered 401")
    assert not health.check_rclone(rc_server, "", "")[0]
    assert not health.check_rclone(f"http://127.0.0.1:{free_port()}", "u", "p", timeout=1)[0]
    env = {"RCLONE_RC_USER": "u", "RCLONE_RC_PASS": "p"}
    assert health.main(["rclone", "--url", rc_server], environ=env) == 0


# --- the portal's self-signed certificate -----------------------------------------------------------


def test_names_come_from_allowed_hosts():
    assert selfsigned.names_from_allowed_hosts("portal.example.org, .example.org,*,[::1],127.0.0.1") == [
        "portal.example.org", "example.org", "::1", "127.0.0.1"]
    assert selfsigned.names_from_allowed_hosts("") == ["localhost"]


def test_a_self_signed_pair_is_made_once_and_kept(tmp_path):
    cert, key = tmp_path / "tls" / "tls.crt", tmp_path / "tls" / "tls.key"
    env = {"DTN_TLS_CERT": str(cert), "DTN_TLS_KEY": str(key), "DTN_ALLOWED_HOSTS": "portal.example.org,10.0.0.5"}
    assert selfsigned.main(env) == 0
    assert key.stat().st_mode & 0o777 == 0o600
    made = x509.load_pem_x509_certificate(cert.read_bytes())
    names = made.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["portal.example.org"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    first = cert.read_bytes()
    assert selfsigned.main(env) == 0
    assert cert.read_bytes() == first
    # A new name, or an expiry within 30 days: made again.
    assert selfsigned.main({**env, "DTN_ALLOWED_HOSTS": "portal.example.org,new.example.org"}) == 0
    assert cert.read_bytes() != first
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=380)
    second = cert.read_bytes()
    assert "made" in selfsigned.ensure(cert, key, ["portal.example.org", "new.example.org"], now=later)
    assert cert.read_bytes() != second
    # Python's TLS client takes it as the trust anchor (what an agent's DTN_PORTAL_CA_FILE does).
    ssl.create_default_context(cafile=str(cert))


def test_a_tls_folder_of_an_older_image_is_opened_for_caddy_to_pass_through(tmp_path):
    folder = tmp_path / "tls"
    folder.mkdir(mode=0o700)
    folder.chmod(0o700)
    env = {"DTN_TLS_CERT": str(folder / "tls.crt"), "DTN_TLS_KEY": str(folder / "tls.key"),
           "DTN_ALLOWED_HOSTS": "portal.example.org"}
    assert selfsigned.main(env) == 0
    # Caddy may pass through and read the certificate; nobody but the portal lists the folder or reads the key.
    assert folder.stat().st_mode & 0o777 == 0o711
    assert (folder / "tls.crt").stat().st_mode & 0o777 == 0o644 and (folder / "tls.key").stat().st_mode & 0o777 == 0o600
    # A folder the operator set otherwise is left as it is.
    folder.chmod(0o750)
    assert selfsigned.main(env) == 0 and folder.stat().st_mode & 0o777 == 0o750


def test_a_provided_certificate_is_never_replaced(tmp_path):
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    selfsigned.make(cert, key, ["other.example.org"])
    # Someone else's: the same bytes, but not marked as made here.
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "portal.example.org")])
    now = dt.datetime.now(dt.timezone.utc)
    provided = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
                .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=10))
                .sign(private, hashes.SHA256()))
    cert.write_bytes(provided.public_bytes(serialization.Encoding.PEM))
    before = cert.read_bytes()
    message = selfsigned.ensure(cert, key, ["portal.example.org"])
    assert message.startswith("using the provided certificate") and "expires within 30 days" in message
    assert cert.read_bytes() == before


def test_half_a_pair_or_no_tls_settings(tmp_path, capsys):
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_text("x")
    assert selfsigned.main({"DTN_TLS_CERT": str(cert), "DTN_TLS_KEY": str(key)}) == 2
    assert "provide both" in capsys.readouterr().err
    assert selfsigned.main({"DTN_TLS_CERT": str(cert)}) == 2
    assert selfsigned.main({}) == 0


# --- the portal's health check ----------------------------------------------------------------------


def test_the_portal_check_targets_its_own_server():
    assert healthcheck.target({"DTN_BIND": "0.0.0.0:8443"}) == ("127.0.0.1", 8443)
    assert healthcheck.target({"DTN_BIND": "[::]:8443"}) == ("::1", 8443)
    assert healthcheck.target({}) == ("127.0.0.1", 8000)
    assert healthcheck.host_header({"DTN_ALLOWED_HOSTS": "*,.example.org"}) == "example.org"
    assert healthcheck.host_header({}) == "localhost"
    ok, why = healthcheck.check({"DTN_BIND": f"127.0.0.1:{free_port()}"})
    assert not ok and "/healthz" in why


# --- the MinIO profile's guard ----------------------------------------------------------------------


def test_minio_refuses_to_start_without_credentials_of_its_own():
    service = load(COMPOSE_FILES["receiver"])["services"]["minio"]
    script = service["entrypoint"][2].replace("$$", "$")
    argv = ["/bin/sh", "-c", script, "minio-guard", *service["command"]]
    base = {"PATH": os.environ["PATH"]}
    for env in ({}, {"MINIO_ROOT_USER": "admin", "MINIO_ROOT_PASSWORD": "short"},
                {"MINIO_ROOT_USER": "", "MINIO_ROOT_PASSWORD": "long enough password"}):
        result = subprocess.run(argv, env={**base, **env}, capture_output=True, text=True, timeout=10)
        assert result.returncode == 2 and "set MINIO_ROOT_USER" in result.stderr, env
    # With both set it hands over to the image's entrypoint (absent here: sh says so, with the arguments kept).
    result = subprocess.run(argv, env={**base, "MINIO_ROOT_USER": "admin", "MINIO_ROOT_PASSWORD": "long enough"},
                            capture_output=True, text=True, timeout=10)
    assert result.returncode == 127 and "/usr/bin/docker-entrypoint.sh" in result.stderr
