"""Every service built from this repository, started as a local process exactly as its compose file
says: its command, its environment (interpolated from .env.example plus test values for the secrets),
its volumes as local folders and its ports as free ports of 127.0.0.1 (tests/deploy/compose.py).

- the portal: portal-init makes the self-signed certificate and migrates a real PostgreSQL; the server
  then answers /healthz over HTTPS with that certificate, and the compose health check passes;
- the sender's rclone sidecar: rc answers with the credentials from .env and refuses without them;
- the sender's agent: reaches the portal over TLS (trusting the portal's certificate through
  PORTAL_CA_FILE), reaches its sidecar (it reports rclone's version), and stops with status 0;
- the receiver's agent: reaches the portal as a receiver container and stops with status 0;
- the MinIO profile's agent (agent-minio): reaches the portal and reports MinIO's address, with MinIO's
  S3 side played by a real `rclone serve s3` over TLS (no MinIO can be had here; its admin API, which the
  stand-in lacks, is refused and the agent keeps going), and stops with status 0.
"""

from __future__ import annotations

import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg2
import pytest
import requests

from tests.deploy.compose import COMPOSE_FILES, REPO, Project, read_env_file, stop
from tests.tools.net import free_port
from tests.tools.pgcluster import Cluster

pytestmark = pytest.mark.e2e

RC_PASS = secrets.token_hex(16)
POSTGRES_PASSWORD = secrets.token_hex(16)


def wait_for(predicate, timeout: float, what: str, process=None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {process.returncode}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}:\n{_tail(log)}")
        time.sleep(0.1)


def _tail(log: Path | None) -> str:
    if log is None or not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-60:])


def _agent_health_wired() -> bool:
    """Does the running agent write the heartbeat marker agent/health.py reads?"""
    pattern = re.compile(r"\bhealth\.mark\(|from agent\.health import|from agent import .*\bhealth\b")
    return any(pattern.search(path.read_text()) for path in (REPO / "agent").glob("*.py") if path.name != "health.py")


class Person:
    def __init__(self, url: str, ca: Path):
        self.url = url
        self.session = requests.Session()
        self.session.verify = str(ca)
        # Or REQUESTS_CA_BUNDLE from the environment would win over session.verify.
        self.session.trust_env = False
        body = {"username": f"deploy-{secrets.token_hex(4)}", "email": "deploy@example.org",
                "password": "correct horse battery staple 42"}
        response = self.session.post(f"{url}/api/v1/signup", json=body, timeout=30)
        assert response.status_code == 201, response.text
        response = self.session.post(f"{url}/api/v1/auth/token", json={**body, "name": "deploy"}, timeout=30)
        assert response.status_code == 201, response.text
        self.session.headers["Authorization"] = f"Bearer {response.json()['token']}"

    def register(self, role: str, name: str | None = None) -> dict:
        response = self.session.post(f"{self.url}/api/v1/containers",
                                     json={"name": name or f"{role}-compose", "role": role}, timeout=30)
        assert response.status_code == 201, response.text
        return response.json()

    def container(self, container_id: str) -> dict:
        return self.session.get(f"{self.url}/api/v1/containers/{container_id}", timeout=30).json()


@pytest.fixture(scope="module")
def scratch():
    path = Path(tempfile.mkdtemp(prefix="dtn-deploy-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def database():
    cluster = Cluster()
    try:
        url = cluster.start()
        connection = psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("CREATE DATABASE dtn")
        connection.close()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def portal(scratch, database):
    """The portal compose file's portal-init, then its portal, against a real PostgreSQL."""
    tls_dir = scratch / "portal-tls"
    tls_dir.mkdir(mode=0o700)
    # Every site of these tests is this host: the receiver's address is on loopback.
    env = {**read_env_file(), "POSTGRES_PASSWORD": POSTGRES_PASSWORD, "PORTAL_TLS_DIR": str(tls_dir),
           "DTN_ALLOWED_HOSTS": "localhost,127.0.0.1", "DTN_ALLOW_LOCAL_ENDPOINTS": "true"}
    project = Project(COMPOSE_FILES["portal"], env, scratch / "portal")
    project.ports[("db", 5432)] = database.port
    project.assign_ports("portal")
    project.env_url = f"https://localhost:{project.ports[('portal', 8443)]}"

    init = project.run("portal-init", timeout=120)
    assert init.returncode == 0, init.stdout + init.stderr
    project.init_output = init.stdout + init.stderr
    project.cert = tls_dir / "tls.crt"

    log = scratch / "portal.log"
    process = project.popen("portal", log)
    try:
        def healthy():
            try:
                return requests.get(f"{project.env_url}/healthz", verify=str(project.cert), timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(healthy, 60, "the portal to answer /healthz over HTTPS", process, log)
        project.process, project.log = process, log
        yield project
    finally:
        stop(process)


@pytest.fixture(scope="module")
def person(portal):
    person = Person(portal.env_url, portal.cert)
    yield person
    # An idle keep-alive connection would hold the server's graceful stop for its whole timeout.
    person.session.close()


def test_portal_init_makes_a_self_signed_certificate_and_migrates_postgresql(portal, database):
    assert "made a self-signed certificate" in portal.init_output
    key = portal.cert.with_name("tls.key")
    assert key.stat().st_mode & 0o777 == 0o600
    url = f"postgres://dtn@127.0.0.1:{database.port}/dtn"
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM django_migrations WHERE app = 'transfers'")
        assert cursor.fetchone()[0] > 0
    # Run again (every `up` does): the certificate is kept, the migrations have nothing left to do.
    again = portal.run("portal-init", timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "using the self-signed certificate" in again.stdout
    assert "No migrations to apply" in again.stdout


def test_the_portal_serves_https_only_and_its_health_check_passes(portal):
    port = portal.ports[("portal", 8443)]
    # The certificate names the hosts of DTN_ALLOWED_HOSTS: verification against it succeeds.
    response = requests.get(f"https://localhost:{port}/api/agent/v1/heartbeat", verify=str(portal.cert), timeout=5)
    assert response.status_code in (401, 403, 405)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    check = portal.run("portal", key="healthcheck")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "healthy" in check.stdout
    # The lease reaper runs in the server processes (ASGI lifespan): no separate service is needed.
    assert portal.process.poll() is None


@pytest.fixture(scope="module")
def sender(scratch, portal, person):
    registered = person.register("sender")
    send = scratch / "send"
    send.mkdir()
    (send / "hello.txt").write_text("hello\n")
    env = {**read_env_file(), "SEND_FOLDER": str(send), "DTN_RCLONE_RC_PASS": RC_PASS,
           "DTN_AGENT_TOKEN": registered["agent_token"], "DTN_PORTAL_URL": portal.env_url,
           "PORTAL_CA_FILE": str(portal.cert)}
    project = Project(COMPOSE_FILES["sender"], env, scratch / "sender")
    project.assign_ports("rclone")
    project.registered = registered
    project.processes = []
    yield project
    for process in project.processes:
        stop(process)


@pytest.fixture(scope="module")
def sidecar(sender, scratch):
    log = scratch / "rclone.log"
    process = sender.popen("rclone", log)
    sender.processes.append(process)
    url = f"http://127.0.0.1:{sender.ports[('rclone', 5572)]}"
    user = sender.env["DTN_RCLONE_RC_USER"]

    def answers():
        try:
            return requests.post(f"{url}/core/version", auth=(user, RC_PASS), timeout=1).status_code == 200
        except requests.RequestException:
            return False

    wait_for(answers, 20, "rclone rcd to answer", process, log)
    return url


def test_the_rclone_sidecar_answers_with_its_credentials_only(sender, sidecar):
    user = sender.env["DTN_RCLONE_RC_USER"]
    assert requests.post(f"{sidecar}/core/version", auth=(user, RC_PASS), timeout=5).json()["version"].startswith("v1.")
    assert requests.post(f"{sidecar}/core/version", timeout=5).status_code == 401
    assert requests.post(f"{sidecar}/core/version", auth=(user, "wrong"), timeout=5).status_code == 401
    assert requests.post(f"{sidecar}/operations/list", json={"fs": "/", "remote": ""}, timeout=5).status_code == 401
    check = sender.run("rclone", key="healthcheck")
    assert check.returncode == 0, check.stdout + check.stderr
    # No secret on its command line.
    assert RC_PASS not in " ".join(sender.command("rclone"))


def test_the_sender_agent_reaches_the_portal_over_tls_and_its_sidecar(sender, sidecar, person, scratch):
    log = scratch / "sender-agent.log"
    process = sender.popen("agent", log)
    sender.processes.append(process)
    container_id = sender.registered["container_id"]

    def reported():
        record = person.container(container_id)
        return record if record["online"] and record["rclone_version"] else None

    record = wait_for(reported, 30, "the sender agent's heartbeat with rclone's version", process, log)
    assert record["rclone_version"].startswith("v1.75")
    if _agent_health_wired():
        health = sender.run("agent", key="healthcheck")
        assert health.returncode == 0, health.stdout + health.stderr
    else:
        # Until the agent writes the heartbeat marker, its health check says so (and fails).
        health = sender.run("agent", key="healthcheck")
        assert health.returncode == 1 and "no heartbeat accepted yet" in health.stdout
    stop(process)
    assert process.returncode == 0, _tail(log)
    text = log.read_text()
    assert sender.registered["agent_token"] not in text and RC_PASS not in text


def test_the_receiver_agent_reaches_the_portal(scratch, portal, person):
    registered = person.register("receiver")
    receive = scratch / "receive"
    receive.mkdir()
    env = {**read_env_file(), "RECEIVE_FOLDER": str(receive), "DTN_AGENT_TOKEN": registered["agent_token"],
           "DTN_PORTAL_URL": portal.env_url, "PORTAL_CA_FILE": str(portal.cert), "DTN_RECEIVER_HOST": "127.0.0.1",
           "DTN_RECEIVER_PORT": str(free_port())}
    project = Project(COMPOSE_FILES["receiver"], env, scratch / "receiver")
    log = scratch / "receiver-agent.log"
    process = project.popen("agent", log)
    try:
        wait_for(lambda: person.container(registered["container_id"])["online"], 30,
                 "the receiver agent's heartbeat", process, log)
        if _agent_health_wired():
            health = project.run("agent", key="healthcheck")
            assert health.returncode == 0, health.stdout + health.stderr
    finally:
        stop(process)
    assert process.returncode == 0, _tail(log)
    assert registered["agent_token"] not in log.read_text()


def test_the_minio_profiles_agent_reaches_the_portal_and_reports_minios_address(scratch, portal, person):
    from agent.tls import ensure_certificate
    from tests.harness import S3Server, new_keys

    registered = person.register("receiver", name="receiver-minio-compose")
    # MINIO_CERTS_DIR as MinIO reads it: public.crt and private.key.
    certs = scratch / "minio-certs"
    made = ensure_certificate(scratch / "minio-tls", ["127.0.0.1"])
    certs.mkdir()
    (certs / "public.crt").write_text(made.cert_path.read_text())
    (certs / "private.key").write_bytes(made.key_path.read_bytes())
    root_user, root_password = new_keys()
    (scratch / "minio-data").mkdir()
    stand_in = S3Server(scratch / "minio-data", root_user, root_password, cert=certs / "public.crt",
                        key=certs / "private.key", log_dir=scratch).start()
    env = {**read_env_file(), "DTN_AGENT_TOKEN": registered["agent_token"], "DTN_PORTAL_URL": portal.env_url,
           "PORTAL_CA_FILE": str(portal.cert), "MINIO_ROOT_USER": root_user, "MINIO_ROOT_PASSWORD": root_password,
           "MINIO_CERTS_DIR": str(certs), "DTN_RECEIVER_MINIO_URL": stand_in.endpoint,
           # Not read by agent-minio: the rclone agent's settings in the same .env stay harmless.
           "RECEIVE_FOLDER": str(scratch), "DTN_RECEIVER_HOST": "127.0.0.1"}
    project = Project(COMPOSE_FILES["receiver"], env, scratch / "receiver-minio")
    log = scratch / "receiver-minio-agent.log"
    process = project.popen("agent-minio", log)
    try:
        record = wait_for(lambda: (lambda r: r if r["online"] else None)(person.container(registered["container_id"])),
                          30, "the MinIO agent's heartbeat", process, log)
        assert record["endpoint"] == stand_in.endpoint
        health = project.run("agent-minio", key="healthcheck")
        assert health.returncode == 0, health.stdout + health.stderr
    finally:
        stop(process)
        stand_in.stop()
    assert process.returncode == 0, _tail(log)
    text = log.read_text()
    assert registered["agent_token"] not in text and root_password not in text

    # Without MINIO_CERTS_DIR MinIO serves plain HTTP: an https:// URL is refused with a sentence.
    plain = Project(COMPOSE_FILES["receiver"], {**env, "MINIO_CERTS_DIR": ""}, scratch / "receiver-minio-plain")
    check = subprocess.run(plain.command("agent-minio") + ["--check-config"], env=plain.process_env("agent-minio"),
                           cwd=REPO, capture_output=True, text=True, timeout=60)
    assert check.returncode == 2 and "DTN_RECEIVER_MINIO_CERT is required with an https://" in check.stderr
