"""A receiver serving its grants from MinIO (DTN_RECEIVER_S3=minio), against a real S3 server.

No MinIO server or image can be had on this machine. MinIO's S3 side is played by a real `rclone
serve s3` over TLS, with a self-signed certificate standing for MinIO's public.crt and its one key
standing for MinIO's root key. Against it: the backend makes a grant's bucket through the SDK; the
site checks a grant with the grant's own key (a grant given that key: rclone has only one) and says
so when the key is wrong; TLS trusts exactly the configured certificate; verify_received reads
objects back over S3 and answers as the folder's task does.

MinIO's admin API (users, policies, server info) is the one part no server here implements: those
calls go to tests/agent/minio_fakes.FakeAdmin, except where the real SDK is sent to the real server
to see its refusal become a health entry, in the test and in a whole agent process."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import time

import pytest
import urllib3
from minio import Minio

from agent import config as config_module
from agent.receiver.backend import s3_client
from agent.receiver.site import ReceiverSite
from agent.tasks import FolderTasks, TaskRefused
from agent.tls import ensure_certificate, fingerprint
from tests.agent.minio_fakes import FakeAdmin, drive, info_message
from tests.harness import Agent, Person, S3Server, new_keys, wait_for

pytestmark = pytest.mark.e2e

INFO = info_message([[drive(600_000_000_000, index=0), drive(600_000_000_000, index=1)],
                     [drive(500_000_000_000, index=2), drive(700_000_000_000, index=3)]], parity=2, per_set=[4])
FREE = 2_400_000_000_000 * 2 // 4


class StandIn:
    """MinIO's S3 side: `rclone serve s3` over TLS, objects as plain files under `data`."""

    def __init__(self, tmp_path):
        self.data = tmp_path / "data"
        self.data.mkdir()
        self.tls = ensure_certificate(tmp_path / "minio-certs", ["127.0.0.1", "localhost"])
        self.root_user, self.root_password = new_keys()
        (tmp_path / "logs").mkdir()
        self.server = S3Server(self.data, self.root_user, self.root_password, cert=self.tls.cert_path,
                               key=self.tls.key_path, log_dir=tmp_path / "logs").start()
        self.url = f"https://127.0.0.1:{self.server.port}"
        self.tmp_path = tmp_path

    def environment(self, cert=None) -> dict:
        return {"DTN_RECEIVER_S3": "minio", "DTN_RECEIVER_MINIO_URL": self.url,
                "DTN_RECEIVER_MINIO_ROOT_USER": self.root_user, "DTN_RECEIVER_MINIO_ROOT_PASSWORD": self.root_password,
                "DTN_RECEIVER_MINIO_CERT": str(cert or self.tls.cert_path)}

    def site(self, cert=None, fake_admin: bool = True) -> ReceiverSite:
        """The receiver as the agent makes it, from its configuration."""
        loaded = config_module.load({"DTN_PORTAL_URL": "https://portal.example.org",
                                     "DTN_AGENT_TOKEN": "dtn_agent_0123456789ab_test",
                                     "DTN_STATE_DIR": str(self.tmp_path / "state"), **self.environment(cert)})
        site = ReceiverSite(None, loaded.receiver, loaded.state_dir)
        if fake_admin:
            site.servers.admin = FakeAdmin(INFO)
        return site

    def grant(self, grant_id="0b7a3a52-6a53-4b8e-9d0c-6f4f1b2f0a11", bucket="alice-3f2a", keys=None) -> dict:
        access, secret = keys or (self.root_user, self.root_password)
        return {"grant_id": grant_id, "bucket": bucket, "access_key": access, "secret_key": secret}

    def client(self) -> Minio:
        pool = urllib3.PoolManager(ca_certs=str(self.tls.cert_path), retries=urllib3.Retry(total=0))
        return Minio(f"127.0.0.1:{self.server.port}", access_key=self.root_user, secret_key=self.root_password,
                     secure=True, http_client=pool)


class Portal:
    def __init__(self, *grants):
        self.answer = list(grants)

    def grants(self, etag):
        return self.answer, "v1"


@pytest.fixture
def minio(tmp_path):
    stand_in = StandIn(tmp_path)
    yield stand_in
    stand_in.server.stop()


def test_the_site_makes_the_grants_bucket_and_checks_it_with_the_grants_own_key(minio):
    site = minio.site()
    grant = minio.grant()
    wrong = minio.grant("5c1e6d0e-1111-4c8e-8d0c-6f4f1b2f0a12", "charlie-77b1", new_keys())
    assert site.refresh(Portal(grant, wrong)) is True
    # Made through the SDK with the root key, on the real server: the bucket is there.
    assert (minio.data / "alice-3f2a").is_dir() and minio.client().bucket_exists("alice-3f2a")
    health = site.health
    assert health[grant["grant_id"]] == "ok"
    # The health check speaks with the grant's key: a key the server does not hold is refused there.
    assert health[wrong["grant_id"]].startswith("unhealthy: ")
    assert "InvalidAccessKeyId" in health[wrong["grant_id"]] or "403" in health[wrong["grant_id"]]
    described = site.describe()
    # One address for every grant: MinIO's.
    assert described["endpoint"] == minio.url and "grants" not in described
    # The certificate senders will pin is MinIO's public.crt, as the rclone backend reports its own.
    assert described["certificate_pem"] == minio.tls.cert_path.read_text()
    assert described["certificate_sha256"] == fingerprint(minio.tls.cert_path.read_text()) == minio.tls.sha256
    assert described["disk_free_bytes"] == FREE
    assert described["health"]["grants"] == health
    assert site.servers.admin.attached == {grant["access_key"]: {f"dtn-grant-{grant['grant_id']}"},
                                           wrong["access_key"]: {f"dtn-grant-{wrong['grant_id']}"}}
    site.servers.wait_ready()


def test_a_site_pinned_to_another_certificate_is_refused_by_tls(minio, tmp_path):
    other = ensure_certificate(tmp_path / "other-certs", ["127.0.0.1", "localhost"])
    assert other.sha256 != minio.tls.sha256
    site = minio.site(cert=other.cert_path)
    grant = minio.grant()
    site.refresh(Portal(grant))
    health = site.health[grant["grant_id"]]
    assert health.startswith("MinIO unreachable: SSLError") and "certificate verify failed" in health
    assert not (minio.data / "alice-3f2a").exists()
    with pytest.raises(urllib3.exceptions.MaxRetryError) as refused:
        s3_client("127.0.0.1", minio.server.port, minio.root_user, minio.root_password, site.certificate).list_buckets()
    assert isinstance(refused.value.reason, urllib3.exceptions.SSLError)


def test_verify_received_reads_objects_back_over_s3_and_answers_as_the_folder_does(minio):
    site = minio.site()
    site.refresh(Portal(minio.grant()))
    sender = minio.client()
    big = os.urandom(3_000_000)
    for key, data in (("from-alice/run 1/a.bin", big), ("from-alice/notes é.txt", b"hello bob")):
        sender.put_object("alice-3f2a", key, io.BytesIO(data), len(data))
    paths = ["alice-3f2a/from-alice/run 1/a.bin", "alice-3f2a/from-alice/notes é.txt",
             "alice-3f2a/from-alice/missing.bin", "alice-3f2a/../../etc/passwd", "alice-3f2a"]
    folder = FolderTasks(minio.data, max_bytes=None)
    answer = site.verify_received({"paths": paths})["files"]
    assert answer[:2] == [
        {"path": paths[0], "size": len(big), "sha256": hashlib.sha256(big).hexdigest()},
        {"path": paths[1], "size": 9, "sha256": hashlib.sha256(b"hello bob").hexdigest()}]
    assert answer[:2] == folder.verify_files({"paths": paths})["files"][:2]
    assert answer[2] == {"path": paths[2], "error": f"{paths[2]!r} does not exist in MinIO"}
    assert answer[3] == folder.verify_files({"paths": paths})["files"][3]  # '..' refused, the same words
    assert answer[4] == {"path": "alice-3f2a", "error": "a folder, not a file"}

    # A byte flipped where the object is stored: the checksum read back over S3 shows it.
    landed = minio.data / "alice-3f2a" / "from-alice" / "run 1" / "a.bin"
    flipped = bytearray(big)
    flipped[1_234_567] ^= 0x01
    landed.write_bytes(flipped)
    time.sleep(1.5)  # past the stand-in's --dir-cache-time
    again = site.verify_received({"paths": paths[:1]})["files"][0]
    assert again["sha256"] == hashlib.sha256(flipped).hexdigest() != hashlib.sha256(big).hexdigest()
    assert again == folder.verify_files({"paths": paths[:1]})["files"][0]
    with pytest.raises(TaskRefused, match="non-empty list"):
        site.verify_received({"paths": []})


def test_a_server_without_minios_admin_api_is_each_grants_health_not_a_crash(minio):
    """The real SDK's admin calls, sent to a real server that has no such API."""
    site = minio.site(fake_admin=False)
    grant = minio.grant()
    site.refresh(Portal(grant))
    health = site.health[grant["grant_id"]]
    assert health.startswith("MinIO's admin API refused: status 404, not a MinIO answer"), health
    described = site.describe()
    assert described["health"]["grants"] == {grant["grant_id"]: health} and "disk_free_bytes" not in described
    assert minio.root_password not in health


def test_an_agent_process_on_minio_heartbeats_and_keeps_going_while_the_admin_api_refuses(minio, tmp_path, portal):
    """The whole agent, configured by its environment and its 0600 secrets file, on the real portal."""
    bob = Person(portal.url, "bob-minio-e2e")
    alice = Person(portal.url, "alice-minio-e2e")
    box = bob.register("bob-minio", role="receiver")
    bob.call("POST", "/api/v1/grants", 201, json={"grantee": alice.username, "receiver": box["container_id"]})
    env = minio.environment()
    secrets = {name: env.pop(name) for name in ("DTN_RECEIVER_MINIO_ROOT_USER", "DTN_RECEIVER_MINIO_ROOT_PASSWORD")}
    agent = Agent(portal.url, box["agent_token"], None, tmp_path / "agent-state", tmp_path / "logs",
                  secrets=secrets, DTN_RCLONE_BINARY="/nonexistent/rclone", **env).start()
    try:
        record = wait_for(lambda: (lambda r: r if r["online"] else None)(
            bob.call("GET", f"/api/v1/containers/{box['container_id']}")), 30, "the MinIO receiver's heartbeat")
        assert record["endpoint"] == minio.url
        wait_for(lambda: "MinIO's admin API refused" in agent.log(), 30, "the refusal in the log")
        time.sleep(5)  # a few more beats (2 s apart here): still running, still trying
        assert agent.process.poll() is None
        assert agent.log().count("MinIO's admin API refused") == 1  # said once while the reason holds
    finally:
        agent.signal(signal.SIGTERM)
        status = agent.wait(20)
    assert status == 0
    log = agent.log()
    assert minio.root_password not in log and box["agent_token"] not in log
    assert "grants are served by MinIO at " + minio.url in log
