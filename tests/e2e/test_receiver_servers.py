"""Real `rclone serve s3` processes, one per grant, spoken to with the minio SDK."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error

from agent.receiver import Grant, GrantServers
from agent.tls import ensure_certificate
from tests.tools.net import free_port

pytestmark = pytest.mark.e2e
RCLONE = Path(sys.executable).parent / "rclone"

ALICE = Grant("g-alice", "alice-3f2a", "AKALICE0000000001", "alice-secret-key-0123456789abcdef")
CHARLIE = Grant("g-charlie", "charlie-77b1", "AKCHARLIE00000001", "charlie-secret-key-0123456789abcd")


@pytest.fixture
def site(tmp_path):
    base = free_port()
    certificate = ensure_certificate(tmp_path / "tls", ["127.0.0.1", "localhost"])
    servers = GrantServers(RCLONE, tmp_path / "received", tmp_path / "state", "127.0.0.1",
                           range(base, base + 20), certificate)
    yield servers
    servers.stop_all()


def client(servers: GrantServers, grant: Grant, as_grant: Grant | None = None, ca: Path | None = None) -> Minio:
    """A client of `grant`'s endpoint holding `as_grant`'s keys."""
    keys = as_grant or grant
    endpoint = next(e for e in servers.endpoints() if e["grant_id"] == grant.grant_id)
    pool = urllib3.PoolManager(ca_certs=str(ca or servers.certificate.cert_path),
                               retries=urllib3.Retry(total=0))
    return Minio(f"127.0.0.1:{endpoint['port']}", access_key=keys.access_key, secret_key=keys.secret_key,
                 secure=True, http_client=pool)


def put(minio: Minio, bucket: str, key: str, data: bytes):
    minio.put_object(bucket, key, io.BytesIO(data), len(data))


def assert_refused(attempt):
    """403 or 404 from the server. The minio SDK cannot parse some of rclone's
    error bodies and raises InvalidResponseError, still carrying the status."""
    with pytest.raises((S3Error, InvalidResponseError)) as refused:
        attempt()
    error = refused.value
    if isinstance(error, S3Error):
        assert error.code in ("InvalidAccessKeyId", "AccessDenied", "SignatureDoesNotMatch", "NoSuchBucket")
    else:
        assert "Response code: 403" in str(error) or "Response code: 404" in str(error), str(error)


def test_objects_land_as_plain_files_in_the_grants_folder(site):
    site.sync([ALICE])
    site.wait_ready()
    put(client(site, ALICE), ALICE.bucket, "data/run 1/é.txt", b"hello bob")
    landed = site.receive_dir / ALICE.bucket / "data" / "run 1" / "é.txt"
    assert landed.read_bytes() == b"hello bob"
    assert [b.name for b in client(site, ALICE).list_buckets()] == [ALICE.bucket]


def test_alices_key_cannot_list_read_or_write_charlies_bucket(site):
    site.sync([ALICE, CHARLIE])
    site.wait_ready()
    put(client(site, CHARLIE), CHARLIE.bucket, "private.txt", b"charlie's")
    # Alice's key on Charlie's server: refused outright.
    intruder = client(site, CHARLIE, as_grant=ALICE)
    assert_refused(lambda: list(intruder.list_objects(CHARLIE.bucket)))
    assert_refused(lambda: intruder.get_object(CHARLIE.bucket, "private.txt").read())
    assert_refused(lambda: put(intruder, CHARLIE.bucket, "private.txt", b"overwritten"))
    # Alice's own server does not even know Charlie's bucket, and cannot make one.
    own = client(site, ALICE)
    assert [b.name for b in own.list_buckets()] == [ALICE.bucket]
    assert_refused(lambda: put(own, CHARLIE.bucket, "private.txt", b"overwritten"))
    with pytest.raises((S3Error, InvalidResponseError)):
        own.make_bucket("alice-extra")
    assert (site.receive_dir / CHARLIE.bucket / "private.txt").read_bytes() == b"charlie's"
    assert sorted(p.name for p in site.receive_dir.iterdir()) == sorted([ALICE.bucket, CHARLIE.bucket])


def test_a_client_pinned_to_another_certificate_is_refused(site, tmp_path):
    site.sync([ALICE])
    site.wait_ready()
    other = ensure_certificate(tmp_path / "other-tls", ["127.0.0.1"])
    assert other.sha256 != site.certificate.sha256
    with pytest.raises(urllib3.exceptions.MaxRetryError) as refused:
        client(site, ALICE, ca=other.cert_path).list_buckets()
    assert isinstance(refused.value.reason, urllib3.exceptions.SSLError)
    assert "certificate verify failed" in str(refused.value.reason)


def test_a_revoked_grant_is_no_longer_served(site):
    site.sync([ALICE, CHARLIE])
    site.wait_ready()
    put(client(site, ALICE), ALICE.bucket, "a.txt", b"x")
    alice_before = client(site, ALICE)
    site.sync([CHARLIE])
    with pytest.raises((urllib3.exceptions.HTTPError, S3Error)):
        alice_before.list_buckets()
    assert [e["grant_id"] for e in site.endpoints()] == [CHARLIE.grant_id]
    # Files already received stay where they landed.
    assert (site.receive_dir / ALICE.bucket / "a.txt").exists()


def test_adding_a_grant_mid_upload_does_not_disturb_it(site, tmp_path):
    site.sync([ALICE])
    site.wait_ready()
    source = tmp_path / "big.bin"
    with open(source, "wb") as handle:
        for _ in range(96):
            handle.write(os.urandom(1 << 20))
    endpoint = site.endpoints()[0]["endpoint"]
    remote = (f":s3,provider=Other,access_key_id={ALICE.access_key},endpoint='{endpoint}',"
              f"no_check_bucket=true:{ALICE.bucket}/up")
    env = {**os.environ, "RCLONE_S3_SECRET_ACCESS_KEY": ALICE.secret_key, "RCLONE_CONFIG": os.devnull}
    upload = subprocess.Popen([str(RCLONE), "copy", str(source), remote, "--ca-cert",
                               str(site.certificate.cert_path), "--bwlimit", "40M"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    started = threading.Event()
    threading.Timer(0.8, started.set).start()
    started.wait()
    assert upload.poll() is None, "the upload finished before the grant was added: make it bigger"
    site.sync([ALICE, CHARLIE])
    site.wait_ready()
    output, _ = upload.communicate(timeout=120)
    assert upload.returncode == 0, output.decode()
    landed = site.receive_dir / ALICE.bucket / "up" / "big.bin"
    assert hashlib.sha256(landed.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()
    assert site.endpoints()[0]["restarts"] == 0


def test_a_dead_server_is_restarted_on_the_next_sync(site):
    site.sync([ALICE])
    site.wait_ready()
    served = site._served[ALICE.grant_id]
    served.process.kill()
    served.process.wait()
    site.sync([ALICE])
    site.wait_ready()
    put(client(site, ALICE), ALICE.bucket, "after.txt", b"back")
    assert site.endpoints()[0]["restarts"] == 1


def test_no_secret_appears_in_any_command_line(site):
    site.sync([ALICE, CHARLIE])
    site.wait_ready()
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert ALICE.secret_key not in ps and CHARLIE.secret_key not in ps


def test_the_site_checks_each_grants_server_with_the_minio_sdk(tmp_path):
    from types import SimpleNamespace

    from agent.receiver import ReceiverSite

    base = free_port()
    settings = SimpleNamespace(receive_dir=tmp_path / "received", host="127.0.0.1", bind="127.0.0.1",
                               ports=range(base, base + 10), tls=True)
    settings.receive_dir.mkdir()
    site = ReceiverSite(RCLONE, settings, tmp_path / "state")

    class Portal:
        def grants(self, etag):
            return [{"grant_id": ALICE.grant_id, "bucket": ALICE.bucket, "access_key": ALICE.access_key,
                     "secret_key": ALICE.secret_key}], "v1"

    try:
        assert site.refresh(Portal()) is True
        site.servers.wait_ready()
        assert site.check() == {ALICE.grant_id: "ok"}
        site.servers._served[ALICE.grant_id].process.kill()
        site.servers._served[ALICE.grant_id].process.wait()
        assert site.check()[ALICE.grant_id] == "not running"
        described = site.describe()
        assert described["certificate_sha256"] == site.certificate.sha256
        assert described["disk_free_bytes"] > 0
    finally:
        site.stop()
