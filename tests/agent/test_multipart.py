"""The sender's own multipart upload (agent/sender/multipart.py) against a real `rclone serve s3` over TLS:
a stopped upload resumed sends only the parts the server does not hold; an upload the server lost, or a file
that changed, starts again; the bandwidth limit holds; a refusal is not retried; what a stopped server leaves
in the receive folder is swept before the next one starts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent.receiver.s3server import sweep_leftovers
from agent.sender.multipart import PART_MIN, Client, Layout, Upload, UploadState
from agent.sender.spec import bandwidth_rate
from agent.tls import ensure_certificate
from tests.harness import LOCAL, MiB, S3Server, sha256, wait_for, write_random

ACCESS, SECRET = "AKIAMULTIPART01", "m" * 40
BUCKET = "bkt"


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return ensure_certificate(tmp_path_factory.mktemp("tls"), [LOCAL.address])


@pytest.fixture
def server(tmp_path, tls):
    s3 = S3Server(tmp_path / "received", ACCESS, SECRET, cert=tls.cert_path, key=tls.key_path, log_dir=tmp_path)
    s3.make_bucket(BUCKET)
    s3.start()
    yield s3
    s3.stop()


def upload(server, tls, state: UploadState, source: Path, key: str = "run/big.bin", *, rate=None,
           layout=Layout(PART_MIN, 4), secret=SECRET) -> Upload:
    client = Client(server.endpoint, BUCKET, ACCESS, secret, tls=True, ca_file=tls.cert_path, pool_size=6)
    stat = source.stat()
    return Upload(client, state, path=source, key=key, size=stat.st_size, mtime=stat.st_mtime, layout=layout,
                  rate=rate)


def run(up: Upload, timeout: float = 60) -> Upload:
    up.start()
    up.thread.join(timeout)
    assert up.finished(), "the upload did not end"
    return up


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob(".rclone_temp_*"))


def stop_at(up: Upload, fraction: float) -> None:
    up.start()
    wait_for(lambda: up.progress()[1] >= fraction * up.size or up.finished(), 60, "the upload to get going", 0.02)
    up.stop()
    assert not up.done and up.error is None, up.error


def test_a_stopped_upload_resumed_sends_only_the_parts_the_server_does_not_hold(server, tls, tmp_path):
    source = write_random(tmp_path / "big.bin", 160 * MiB)
    state = UploadState(tmp_path / "state", "one")
    first = upload(server, tls, state, source, rate=80 * MiB)
    stop_at(first, 0.5)
    assert state.read()["upload_id"], "the upload ID stays in the state dir for the restart"
    assert leftovers(server.root), "the server holds the parts (serve s3 streams them into a temp file)"

    second = run(upload(server, tls, state, source))
    assert second.done, second.error
    assert second.resumed and second.held_at_start >= 32 * MiB
    sent, _ = second.progress()
    # What the restart moved is the file less what the server held: nothing it held went again.
    assert sent == source.stat().st_size - second.held_at_start
    assert sent <= 0.7 * source.stat().st_size
    landed = server.root / BUCKET / "run" / "big.bin"
    assert sha256(landed) == sha256(source)
    # The source's time is kept (rclone's metadata, which serve s3 applies).
    assert abs(landed.stat().st_mtime - source.stat().st_mtime) < 1e-3
    assert not state.path.exists() and leftovers(server.root) == []


def test_an_upload_the_server_lost_starts_again_and_its_leftover_is_swept(server, tls, tmp_path):
    source = write_random(tmp_path / "big.bin", 64 * MiB)
    state = UploadState(tmp_path / "state", "lost")
    stop_at(upload(server, tls, state, source, rate=40 * MiB), 0.5)
    server.stop()
    stale = leftovers(server.root)
    assert stale, "a stopped server leaves its partial upload"
    assert [p.name for p in sweep_leftovers(server.root)] == stale
    server.start()

    again = run(upload(server, tls, state, source))
    assert again.done, again.error
    assert "sent again from its start" in again.restarted_from_zero and not again.resumed
    assert again.progress()[0] == source.stat().st_size
    assert sha256(server.root / BUCKET / "run" / "big.bin") == sha256(source)
    assert leftovers(server.root) == []


def test_a_server_restarted_mid_upload_is_noticed_and_the_file_sent_again_within_the_same_run(server, tls, tmp_path):
    """The restarted server answers the lost upload's parts by closing the connection mid-body (the client sees
    a broken pipe, not NoSuchUpload): the first retry asks for the upload and starts it again from byte 0."""
    source = write_random(tmp_path / "big.bin", 64 * MiB)
    up = upload(server, tls, UploadState(tmp_path / "state", "restarted"), source, rate=32 * MiB,
                layout=Layout(PART_MIN, 2))
    up.start()
    wait_for(lambda: up.held >= PART_MIN or up.finished(), 30, "a part to land", 0.02)
    server.stop()
    sweep_leftovers(server.root)
    server.start()
    up.thread.join(60)
    assert up.finished() and up.done, up.error
    assert "sent again from its start" in up.restarted_from_zero
    assert up.progress()[0] > source.stat().st_size  # the lost part and the whole file again
    assert sha256(server.root / BUCKET / "run" / "big.bin") == sha256(source)
    assert leftovers(server.root) == []


def test_a_file_changed_since_its_upload_began_is_sent_whole_and_the_old_upload_aborted(server, tls, tmp_path):
    source = write_random(tmp_path / "big.bin", 48 * MiB)
    state = UploadState(tmp_path / "state", "changed")
    stop_at(upload(server, tls, state, source, rate=40 * MiB), 0.5)
    write_random(source, 40 * MiB)

    again = run(upload(server, tls, state, source))
    assert again.done, again.error
    assert "changed" in again.restarted_from_zero
    assert sha256(server.root / BUCKET / "run" / "big.bin") == sha256(source)
    assert leftovers(server.root) == [], "the old upload was aborted, not left behind"


def test_the_bandwidth_limit_holds(server, tls, tmp_path):
    source = write_random(tmp_path / "big.bin", 24 * MiB)
    started = time.monotonic()
    up = run(upload(server, tls, UploadState(tmp_path / "state", "slow"), source, rate=8 * MiB))
    assert up.done, up.error
    # 24 MiB at 8 MiB/s, half a second of credit: at least 2.5 s (a physical bound, no upper one).
    assert time.monotonic() - started >= 2.4


def test_a_refusal_is_not_retried(server, tls, tmp_path):
    source = write_random(tmp_path / "big.bin", 20 * MiB)
    started = time.monotonic()
    up = run(upload(server, tls, UploadState(tmp_path / "state", "refused"), source, secret="x" * 40))
    assert not up.done and up.error is not None
    assert "SignatureDoesNotMatch" in str(up.error) or "AccessDenied" in str(up.error) or "403" in str(up.error)
    assert up.retries == 0 and time.monotonic() - started < 10


def test_the_layout_keeps_in_flight_bytes_under_the_servers_reorder_buffer():
    assert Layout.choose(2 * 1024 * MiB, 5 * MiB, 4) == Layout(16 * MiB, 4)
    assert Layout.choose(2 * 1024 * MiB, 64 * MiB, 8) == Layout(64 * MiB, 2)
    huge = Layout.choose(500 * 1024 * MiB, 5 * MiB, 4)
    assert huge.count(500 * 1024 * MiB) <= 10_000 and huge.part_size == 64 * MiB and huge.parallel == 2
    assert Layout(16 * MiB, 4).length(40 * MiB, 3) == 8 * MiB
    # Under a limit, one part at a time per 25 MiB/s of it.
    assert Layout.choose(2 * 1024 * MiB, 5 * MiB, 4, rate=16 * MiB) == Layout(16 * MiB, 1)
    assert Layout.choose(2 * 1024 * MiB, 5 * MiB, 4, rate=60 * MiB) == Layout(16 * MiB, 3)


@pytest.mark.parametrize("text, rate", [("50M", 50 * MiB), ("512k", 512 * 1024), ("1.5Gi", 1.5 * 1024 * MiB),
                                        ("100", 100 * 1024), ("2B", 2), (None, None), ("", None)])
def test_rates_read_as_rclone_reads_them(text, rate):
    assert bandwidth_rate(text) == rate


def test_the_sweep_removes_only_serve_s3s_partial_uploads_and_follows_no_link(tmp_path):
    receive = tmp_path / "receive"
    (receive / "alice" / "run").mkdir(parents=True)
    (receive / "alice" / "run" / ".rclone_temp_multipart_1234").write_bytes(b"x" * 10)
    (receive / "alice" / ".rclone_multipart_upload_99").write_bytes(b"y")
    (receive / "alice" / "run" / "data.bin").write_bytes(b"kept")
    (receive / "alice" / "run" / "rclone_temp_not_ours").write_bytes(b"kept")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / ".rclone_temp_put_1").write_bytes(b"not under the receive folder")
    (receive / "link").symlink_to(outside)

    removed = sweep_leftovers(receive)
    assert sorted(p.name for p in removed) == [".rclone_multipart_upload_99", ".rclone_temp_multipart_1234"]
    assert sorted(p.name for p in (receive / "alice" / "run").iterdir()) == ["data.bin", "rclone_temp_not_ours"]
    assert (outside / ".rclone_temp_put_1").exists()
    assert sweep_leftovers(tmp_path / "missing") == []
