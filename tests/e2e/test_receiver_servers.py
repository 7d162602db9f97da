"""A real `rclone serve s3` serving every grant on one port, spoken to with the minio SDK: each grant's
key reaches its own folder only, grants come and go without a restart, nothing secret on a command
line."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error

from agent.receiver.backend import Grant
from agent.receiver.s3server import SharedServer
from agent.tls import ensure_certificate
from tests.harness import memory_mib
from tests.tools.net import free_port

pytestmark = pytest.mark.e2e
RCLONE = Path(sys.executable).parent / "rclone"

ALICE = Grant("g-alice", "alice-3f2a", "AKALICE0000000001", "alice-secret-key-0123456789abcdef")
CHARLIE = Grant("g-charlie", "charlie-77b1", "AKCHARLIE00000001", "charlie-secret-key-0123456789abcd")


@pytest.fixture
def site(tmp_path):
    certificate = ensure_certificate(tmp_path / "tls", ["127.0.0.1", "localhost"])
    (tmp_path / "received").mkdir()
    server = SharedServer(RCLONE, tmp_path / "received", tmp_path / "state", "127.0.0.1", free_port(),
                          certificate)
    yield server
    server.stop_all()


def client(server: SharedServer, keys: Grant, ca: Path | None = None) -> Minio:
    pool = urllib3.PoolManager(ca_certs=str(ca or server.certificate.cert_path), retries=urllib3.Retry(total=0))
    return Minio(f"127.0.0.1:{server.port}", access_key=keys.access_key, secret_key=keys.secret_key, secure=True,
                 http_client=pool, region="us-east-1")


def put(minio: Minio, bucket: str, key: str, data: bytes):
    minio.put_object(bucket, key, io.BytesIO(data), len(data))


def assert_refused(attempt, statuses=(403, 404)):
    """An error status from the server (a revoked grant's cached backend answers 500 too). The minio
    SDK cannot parse some of rclone's error bodies and raises InvalidResponseError, still carrying the
    status; a 500 it may retry, then raise MaxRetryError."""
    with pytest.raises((S3Error, InvalidResponseError, urllib3.exceptions.MaxRetryError)) as refused:
        attempt()
    error = refused.value
    if isinstance(error, S3Error):
        assert error.response.status in statuses, (error.code, error.response.status)
    elif isinstance(error, InvalidResponseError):
        assert any(f"Response code: {status}" in str(error) for status in statuses), str(error)
    else:
        assert 500 in statuses and "500 error responses" in str(error), str(error)


def test_objects_land_as_plain_files_in_the_grants_folder(site):
    site.sync([ALICE])
    site.wait_ready()
    put(client(site, ALICE), ALICE.bucket, "data/run 1/é.txt", b"hello bob")
    landed = site.receive_dir / ALICE.bucket / "data" / "run 1" / "é.txt"
    assert landed.read_bytes() == b"hello bob"
    assert [b.name for b in client(site, ALICE).list_buckets()] == [ALICE.bucket]


def test_each_key_is_refused_on_the_other_grants_folder_to_list_read_and_write(site):
    site.sync([ALICE, CHARLIE])
    site.wait_ready()
    put(client(site, CHARLIE), CHARLIE.bucket, "private.txt", b"charlie's")
    put(client(site, ALICE), ALICE.bucket, "mine.txt", b"alice's")
    for intruder, victim, name in ((ALICE, CHARLIE, "private.txt"), (CHARLIE, ALICE, "mine.txt")):
        other = client(site, intruder)
        assert [b.name for b in other.list_buckets()] == [intruder.bucket]
        assert_refused(lambda: list(other.list_objects(victim.bucket, recursive=True)))
        assert_refused(lambda: other.get_object(victim.bucket, name).read())
        assert_refused(lambda: other.stat_object(victim.bucket, name))
        assert_refused(lambda: put(other, victim.bucket, name, b"overwritten"))
        assert_refused(lambda: put(other, victim.bucket, "new.txt", b"planted"))
    assert (site.receive_dir / CHARLIE.bucket / "private.txt").read_bytes() == b"charlie's"
    assert (site.receive_dir / ALICE.bucket / "mine.txt").read_bytes() == b"alice's"
    assert not (site.receive_dir / ALICE.bucket / "new.txt").exists()
    assert not (site.receive_dir / CHARLIE.bucket / "new.txt").exists()


def test_a_key_cannot_make_a_bucket_and_nothing_is_created(site):
    site.sync([ALICE])
    site.wait_ready()
    own = client(site, ALICE)
    with pytest.raises((S3Error, InvalidResponseError, urllib3.exceptions.MaxRetryError)):
        own.make_bucket("alice-extra")
    assert sorted(p.name for p in site.receive_dir.iterdir()) == [ALICE.bucket]
    assert sorted(p.name for p in site.book.links_dir.iterdir()) == [ALICE.grant_id]


def test_an_unknown_key_and_a_wrong_secret_are_refused(site):
    site.sync([ALICE])
    site.wait_ready()
    assert_refused(lambda: client(site, Grant("x", "x", "AKUNKNOWN00000001", "nope-nope-nope")).list_buckets())
    assert_refused(lambda: client(site, Grant("x", "x", ALICE.access_key, "not-alices-secret")).list_buckets())


def test_a_client_pinned_to_another_certificate_is_refused(site, tmp_path):
    site.sync([ALICE])
    site.wait_ready()
    other = ensure_certificate(tmp_path / "other-tls", ["127.0.0.1"])
    assert other.sha256 != site.certificate.sha256
    with pytest.raises(urllib3.exceptions.MaxRetryError) as refused:
        client(site, ALICE, ca=other.cert_path).list_buckets()
    assert isinstance(refused.value.reason, urllib3.exceptions.SSLError)
    assert "certificate verify failed" in str(refused.value.reason)


def test_a_revoked_grant_reaches_nothing_from_the_sync_on_though_rclone_still_knows_its_key(site):
    site.sync([ALICE, CHARLIE])
    site.wait_ready()
    alice = client(site, ALICE)
    put(alice, ALICE.bucket, "a.txt", b"x")  # rclone now keeps Alice's answer for 5 minutes
    pid = site.process.pid
    site.sync([CHARLIE])
    assert_refused(lambda: put(alice, ALICE.bucket, "b.txt", b"after"), statuses=(403, 404, 500))
    assert_refused(lambda: alice.get_object(ALICE.bucket, "a.txt").read(), statuses=(403, 404, 500))
    assert not (site.receive_dir / ALICE.bucket / "b.txt").exists()
    assert site.process.pid == pid  # nothing about grants restarts the server
    # Charlie is served as before, and the files Alice sent stay where they landed.
    put(client(site, CHARLIE), CHARLIE.bucket, "c.txt", b"still")
    assert (site.receive_dir / ALICE.bucket / "a.txt").read_bytes() == b"x"
    assert site.health([CHARLIE]) == {CHARLIE.grant_id: "ok"}


def test_a_grant_given_again_is_served_again(site):
    site.sync([ALICE])
    site.wait_ready()
    site.sync([])
    site.sync([ALICE])
    put(client(site, ALICE), ALICE.bucket, "again.txt", b"back")
    assert (site.receive_dir / ALICE.bucket / "again.txt").read_bytes() == b"back"


def test_adding_and_revoking_grants_mid_upload_does_not_disturb_it(site, tmp_path):
    site.sync([ALICE, CHARLIE])
    site.wait_ready()
    source = tmp_path / "big.bin"
    with open(source, "wb") as handle:
        for _ in range(96):
            handle.write(os.urandom(1 << 20))
    remote = (f":s3,provider=Other,access_key_id={ALICE.access_key},endpoint='{site.endpoint()}',"
              f"no_check_bucket=true:{ALICE.bucket}/up")
    env = {**os.environ, "RCLONE_S3_SECRET_ACCESS_KEY": ALICE.secret_key, "RCLONE_CONFIG": os.devnull}
    upload = subprocess.Popen([str(RCLONE), "copy", str(source), remote, "--ca-cert",
                               str(site.certificate.cert_path), "--bwlimit", "40M"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    started = threading.Event()
    threading.Timer(0.8, started.set).start()
    started.wait()
    assert upload.poll() is None, "the upload finished before the grants changed: make it bigger"
    dave = Grant("g-dave", "dave-0001", "AKDAVE00000000001", "dave-secret-key-0123456789abcdefg")
    site.sync([ALICE, dave])  # Dave added, Charlie revoked
    output, _ = upload.communicate(timeout=120)
    assert upload.returncode == 0, output.decode()
    landed = site.receive_dir / ALICE.bucket / "up" / "big.bin"
    assert hashlib.sha256(landed.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()
    assert site.restarts == 0


def test_a_dead_server_is_started_again_on_the_next_sync(site):
    site.sync([ALICE])
    site.wait_ready()
    site.process.kill()
    site.process.wait()
    assert site.health([ALICE])[ALICE.grant_id].startswith("the S3 server is not running")
    site.sync([ALICE])
    site.wait_ready()
    put(client(site, ALICE), ALICE.bucket, "after.txt", b"back")
    assert site.restarts == 1 and site.health([ALICE]) == {ALICE.grant_id: "ok"}


def test_no_secret_appears_in_any_command_line_or_file(site):
    site.sync([ALICE, CHARLIE])
    site.wait_ready()
    put(client(site, ALICE), ALICE.bucket, "x", b"x")  # the auth proxy has run
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert ALICE.secret_key not in ps and CHARLIE.secret_key not in ps
    for root in (site.state_dir, site.runtime):
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert ALICE.secret_key.encode() not in path.read_bytes(), path
    assert (site.runtime / "grants.sock").stat().st_mode & 0o777 == 0o600
    assert site.runtime.stat().st_mode & 0o777 == 0o700


def test_one_server_on_one_port_serves_three_hundred_grants_and_a_three_hundred_and_first(site):
    """Each of 300 keys writes its own folder and is refused on its neighbour's; the process and its
    port stay the same when a 301st grant arrives."""
    grants = [Grant(f"g-{i:03d}", f"bucket-{i:03d}", f"AKGRANT{i:010d}", f"secret-{i:03d}-0123456789abcdef")
              for i in range(300)]
    site.sync(grants)
    site.wait_ready()
    pid = site.process.pid
    started = time.monotonic()
    for i, grant in enumerate(grants):
        own = client(site, grant)
        put(own, grant.bucket, "hello.txt", grant.grant_id.encode())
        neighbour = grants[(i + 1) % len(grants)]
        assert_refused(lambda: put(own, neighbour.bucket, "hello.txt", b"not mine"))
    took = time.monotonic() - started
    for grant in grants:
        assert (site.receive_dir / grant.bucket / "hello.txt").read_bytes() == grant.grant_id.encode()
    late = Grant("g-300", "bucket-300", "AKGRANT0000000300", "secret-300-0123456789abcdef")
    site.sync([*grants, late])
    put(client(site, late), late.bucket, "hello.txt", b"late")
    assert site.process.pid == pid and site.restarts == 0
    assert set(site.health([*grants, late]).values()) == {"ok"}
    rss = memory_mib(pid)
    print(f"\n300 grants: 600 requests in {took:.1f} s; serve s3 RSS {rss['VmRSS']:.1f} MiB,"
          f" peak {rss['VmHWM']:.1f} MiB")
