"""One transfer command, run against a scripted rclone and a recording channel."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone

import pytest

from dtn_protocol.endpoints import Rule
from dtn_protocol.failures import FailureReason
from dtn_protocol.states import CommandState
from agent.rclone import JobNotFound, RcError
from agent.failures import classify
from agent.sender import TransferRunner
from agent.sender.errors import TransferFailed
from agent.sender.spec import parse_command
from agent.netcheck import Limits
from tests.agent.fakes import FakeChannel, FakeClock, FakeRc, FakeS3, Frame, done

SECRET = "s3-secret-key-that-must-stay-hidden"


@pytest.fixture
def send_dir(tmp_path):
    root = tmp_path / "send"
    (root / "run" / "sub dir").mkdir(parents=True)
    (root / "run" / "a.bin").write_bytes(b"a" * 1000)
    (root / "run" / "sub dir" / "b ü.txt").write_bytes(b"b" * 200)
    (root / "run" / "c.txt").write_bytes(b"c" * 30)
    (root / "notes.txt").write_text("notes")
    return root


def command(sources=("run",), *, state="claimed", attempt=1, progress=None, **options):
    destination = options.pop("destination", None) or {
        "endpoint": "http://127.0.0.1:9000", "bucket": "alice-3f2a", "prefix": "from-alice",
        "access_key": "AKIAEXAMPLE", "secret_key": SECRET, "tls": False,
        "certificate_pem": None, "certificate_sha256": None}
    return {"command_id": "c0ffee00-0000-0000-0000-000000000001", "kind": "transfer", "state": state,
            "attempt": attempt, "progress": progress or {},
            "payload": {"transfer_id": "t1", "sources": list(sources), "destination": destination,
                        "options": {"verify_checksums": True, "overwrite": "update_changed", "bandwidth_limit": "",
                                    **options}}}


def runner(rc, send_dir, tmp_path, clock=None, **kwargs):
    clock = clock or FakeClock()
    now = iter(datetime(2026, 1, 1, tzinfo=timezone.utc).replace(second=s % 60, minute=s // 60)
               for s in range(100000))
    return TransferRunner(rc, send_dir=send_dir, state_dir=tmp_path / "state", clock=clock, sleep=clock.sleep,
                          now=lambda: next(now), receiver_attempts=kwargs.pop("attempts", 3),
                          receiver_retry_seconds=kwargs.pop("retry", 5.0), progress_seconds=1.0,
                          tcp_probe=kwargs.pop("tcp_probe", lambda host, port, timeout: None),
                          s3_factory=lambda d, ca, n, s3=kwargs.pop("s3", None) or FakeS3(): s3,
                          network_limits=kwargs.pop("limits", Limits(probe_max_bytes=2 * 1024 * 1024)),
                          # These commands name a plain receiver on loopback: the one-host test setup.
                          endpoint_rule=kwargs.pop("endpoint_rule", ONE_HOST), **kwargs)


ONE_HOST = Rule(allow_plain=True, allow_local=True)


@pytest.mark.parametrize("endpoint, pem, words", [
    ("http://127.0.0.1:9000", None, "plain http:// receivers are off"),
    ("https://127.0.0.1:9443", None, "loopback or link-local"),
    ("https://localhost:9443", None, "loopback or link-local"),
    ("http://receiver.example.org:9000", "PEM", "pinned certificate"),
    ("https://portal.example.org:9443", None, "the portal's own address"),
])
def test_a_receiver_address_the_rule_refuses_fails_before_anything_connects(send_dir, tmp_path, endpoint, pem, words):
    rc, connects = FakeRc(), []
    destination = {"kind": "receiver", "endpoint": endpoint, "bucket": "b", "prefix": "", "access_key": "AK",
                   "secret_key": SECRET, "tls": endpoint.startswith("https"), "certificate_pem": pem,
                   "certificate_sha256": "ab:cd" if pem else None}
    run = runner(rc, send_dir, tmp_path, endpoint_rule=Rule(own_hosts=frozenset({"portal.example.org"})),
                 tcp_probe=lambda host, port, timeout: connects.append((host, port)))
    outcome = run.run(command(destination=destination), FakeChannel())
    assert outcome.state == CommandState.FAILED and outcome.reason == FailureReason.DESTINATION_REFUSED
    assert words in outcome.message
    assert connects == [] and rc.calls == []


def test_an_s3_endpoint_typed_by_the_senders_owner_is_theirs_to_choose(send_dir, tmp_path):
    destination = {"kind": "s3", "endpoint": "http://127.0.0.1:9000", "bucket": "alice-3f2a", "prefix": "",
                   "access_key": "AK", "secret_key": SECRET, "tls": False, "certificate_pem": None,
                   "certificate_sha256": None}
    outcome = runner(FakeRc(), send_dir, tmp_path, endpoint_rule=Rule()).run(command(destination=destination),
                                                                           FakeChannel())
    assert outcome.state == CommandState.SUCCEEDED, outcome


def reported(channel, outcome) -> dict[str, dict]:
    """Every file result the command reported, the final report included."""
    return {**channel.files(), **{row["path"]: row for row in outcome.progress["files"]}}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stats(bytes_, transfers, **more):
    return {"bytes": bytes_, "transfers": transfers, "checks": more.pop("checks", 0), "errors": 0, "speed": 500.0,
            **more}


def test_it_copies_a_folder_reports_growing_bytes_and_each_file_with_its_sha256(send_dir, tmp_path):
    # Four polls a second, a report a second: each state is held for a second.
    rc = FakeRc([
        *[Frame(stats=stats(0, 0))] * 4,
        *[Frame(stats=stats(500, 0, transferring=[{"name": "a.bin", "bytes": 500, "size": 1000}]))] * 4,
        *[Frame(stats=stats(1000, 1), transferred=[done("a.bin", 1000, n=1)])] * 4,
        *[Frame(stats=stats(1200, 2), transferred=[done("sub dir/b ü.txt", 200, n=2)])] * 4,
        # c.txt's line never shows in rclone's list: the counts settle it.
        Frame(finished=True, success=True, stats=stats(1230, 3)),
    ])
    channel = FakeChannel()
    outcome = runner(rc, send_dir, tmp_path).run(command(), channel)

    assert outcome.state == CommandState.SUCCEEDED, outcome
    copy = next(c for c in rc.calls if c[0] == "copy_dir")
    # Names as they are, and NFC and NFD apart (agent/names.py).
    assert copy[1] == {"type": "local", "_root": str(send_dir / "run"), "encoding": "None", "skip_links": "true"}
    assert copy[2]["encoding"] == "None"
    assert copy[2]["_root"] == "alice-3f2a/from-alice/run/"
    assert copy[2]["no_check_bucket"] == "true" and copy[2]["secret_access_key"] == SECRET
    assert copy[4] == {"Transfers": 4, "ConnectTimeout": "15s", "NoUnicodeNormalization": True, "CheckSum": True,
                       "Checkers": 8,
                       "MultiThreadStreams": 4, "MultiThreadCutoff": 256 * 1024 * 1024, "OrderBy": "size,desc"}
    sent_bytes = [r["bytes"] for r in channel.reports] + [outcome.progress["bytes"]]
    assert sent_bytes == sorted(sent_bytes) and sent_bytes[-1] == 1230 and len(set(sent_bytes)) >= 4
    assert outcome.progress["total_bytes"] == 1230 and outcome.progress["files_total"] == 3
    assert reported(channel, outcome) == {
        "run/a.bin": {"path": "run/a.bin", "size": 1000, "sha256": sha(b"a" * 1000), "outcome": "sent", "error": ""},
        "run/sub dir/b ü.txt": {"path": "run/sub dir/b ü.txt", "size": 200, "sha256": sha(b"b" * 200),
                                "outcome": "sent", "error": ""},
        "run/c.txt": {"path": "run/c.txt", "size": 30, "sha256": sha(b"c" * 30), "outcome": "sent", "error": ""},
    }
    assert outcome.progress["eta"] == 0 and outcome.progress["rclone"] == {"bytes": 1230, "transfers": 3,
                                                                           "checks": 0}
    # The speed a person sees is this attempt's bytes over the last seconds, not rclone's job average (500 B/s
    # all along): nothing in the first second, then 500 B a second, then less as the last files trickle in.
    speeds = [r["speed"] for r in channel.reports]
    assert speeds[:3] == [0.0, 500.0, 500.0] and speeds[-1] < 400


def test_no_report_carries_the_receivers_secret_key(send_dir, tmp_path):
    rc = FakeRc([Frame(stats=stats(0, 0)), Frame(finished=True, success=False, error="boom " + "x",
                                                 stats=stats(0, 0, lastError="boom"))])
    channel = FakeChannel()
    outcome = runner(rc, send_dir, tmp_path).run(command(), channel)
    text = json.dumps(channel.reports) + json.dumps(outcome.progress) + outcome.message
    assert outcome.state == CommandState.FAILED and SECRET not in text


def test_files_already_there_are_skipped_and_only_the_rest_is_sent(send_dir, tmp_path):
    rc = FakeRc([
        Frame(transferred=[done("a.bin", 1000, checked=True, n=1), done("c.txt", 30, checked=True, n=2)]),
        Frame(finished=True, success=True, stats=stats(200, 1, checks=3),
              transferred=[done("sub dir/b ü.txt", 200, checked=True, n=3), done("sub dir/b ü.txt", 200, n=4)]),
    ])
    channel = FakeChannel()
    outcome = runner(rc, send_dir, tmp_path).run(command(), channel)
    files = reported(channel, outcome)
    assert {path: row["outcome"] for path, row in files.items()} == {
        "run/a.bin": "skipped", "run/c.txt": "skipped", "run/sub dir/b ü.txt": "sent"}
    assert outcome.progress["files_sent"] == 1 and outcome.progress["files_skipped"] == 2
    # Skipped under update_changed means identical: its checksum is reported for the receiver to confirm.
    assert all(row["sha256"] for row in files.values())


def test_a_single_file_source_goes_through_copyfile_to_its_own_name(send_dir, tmp_path):
    rc = FakeRc([Frame(finished=True, success=True, stats=stats(5, 1))])
    channel = FakeChannel()
    outcome = runner(rc, send_dir, tmp_path).run(command(["notes.txt"]), channel)
    assert outcome.state == CommandState.SUCCEEDED
    call = next(c for c in rc.calls if c[0] == "copy_file")
    assert call[1] == {"type": "local", "_root": str(send_dir), "encoding": "None", "skip_links": "true"}
    assert call[2] == "notes.txt"
    assert call[3]["_root"] == "alice-3f2a/from-alice/" and call[4] == "notes.txt"
    assert reported(channel, outcome) == {"notes.txt": {"path": "notes.txt", "size": 5, "sha256": sha(b"notes"),
                                                        "outcome": "sent", "error": ""}}


def test_back_to_back_transfers_to_one_endpoint_reuse_the_probe_but_check_the_rest_again(send_dir, tmp_path):
    s3 = FakeS3()
    rc = FakeRc([Frame(finished=True, success=True, stats=stats(5, 1))],
                [Frame(finished=True, success=True, stats=stats(5, 1))],
                [Frame(finished=True, success=True, stats=stats(5, 1))])
    run = runner(rc, send_dir, tmp_path, s3=s3)
    first = run.run(command(["notes.txt"]), FakeChannel())
    puts_first = sum(1 for op, _ in s3.calls if op == "put")
    second_channel = FakeChannel()
    second = run.run(command(["notes.txt"]), second_channel)
    puts_second = sum(1 for op, _ in s3.calls if op == "put") - puts_first
    assert first.state == second.state == CommandState.SUCCEEDED
    assert puts_first > 1 and puts_second == 1  # only the write/read-back object: the keys are checked again
    check = next(r["network_check"] for r in second_channel.reports if "network_check" in r)
    assert check["probe"]["reused_from_seconds_ago"] >= 0 and "the probe of" in check["summary"]
    # A kept probe of another path (here: another round trip) is refused and replaced by
    # the new probe, which the next transfer reuses.
    [(endpoint, (when, kept))] = run.probes.entries.items()
    run.probes.entries[endpoint] = (when, {**kept, "rtt_median_ms": 1000.0})
    rc.scripts.extend([[Frame(finished=True, success=True, stats=stats(5, 1))] for _ in range(2)])
    puts = []
    for _ in range(2):
        before = len(s3.calls)
        run.run(command(["notes.txt"]), FakeChannel())
        puts.append(sum(1 for op, _ in s3.calls[before:] if op == "put"))
    assert puts[0] > 1 and puts[1] == 1
    # A bandwidth-limited transfer neither reuses nor keeps a probe; with reuse off, every transfer probes.
    run.network_limits = Limits(probe_max_bytes=2 * 1024 * 1024, probe_reuse_seconds=0)
    before = len(s3.calls)
    run.run(command(["notes.txt"]), FakeChannel())
    assert sum(1 for op, _ in s3.calls[before:] if op == "put") > 1


def test_a_stop_from_the_portal_stops_the_rclone_job_and_ends_canceled(send_dir, tmp_path):
    rc = FakeRc([Frame(stats=stats(100, 0))] * 50)
    clock = FakeClock()
    channel = FakeChannel(cancel_at=3)
    outcome = runner(rc, send_dir, tmp_path, clock=clock).run(command(), channel)
    assert outcome.state == CommandState.CANCELED
    assert rc.stopped == [1]
    # The reply that carried the stop was the third report; reports go out every second.
    assert clock.now - 1000.0 < 5
    assert [e["kind"] for e in outcome.progress["events"]] == ["stop"]


def test_a_file_the_stop_cut_short_says_so_plainly_and_rclones_words_go_to_the_event_log(send_dir, tmp_path):
    cut = "multi-thread copy: failed to write chunk: operation error S3: UploadPart, context canceled"
    failed = Frame(stats=stats(100, 0), transferred=[done("a.bin", 1000, error=cut)])
    rc = FakeRc([Frame(stats=stats(100, 0))] * 2 + [failed] + [Frame(stats=stats(100, 0))] * 50)
    outcome = runner(rc, send_dir, tmp_path).run(command(), FakeChannel(cancel_at=4))
    assert (outcome.state, outcome.message) == (CommandState.CANCELED, "stopped by a person")
    [row] = [f for f in outcome.progress["files"] if f["path"] == "run/a.bin"]
    assert (row["outcome"], row["error"]) == ("failed", "not finished: the transfer was stopped; a restart sends it")
    detail = [e["message"] for e in outcome.progress["events"] if e["kind"] == "stop_detail"]
    assert detail == [f"rclone, as its jobs were stopped: {cut}"]


def test_shutdown_stops_the_job_and_leaves_the_command_to_resume(send_dir, tmp_path):
    rc = FakeRc([Frame(stats=stats(100, 0))] * 50)
    outcome = runner(rc, send_dir, tmp_path).run(command(), FakeChannel(stop_at=2))
    assert outcome.state is None and rc.stopped == [1]
    interrupted = outcome.progress["events"][-1]
    assert interrupted["kind"] == "interrupted" and "sent again from its start" in interrupted["message"]


@pytest.mark.parametrize("source, reason", [
    ("missing.txt", FailureReason.SOURCE_MISSING),
    ("/etc/passwd", FailureReason.SOURCE_OUTSIDE_ROOT),
    ("../send", FailureReason.SOURCE_OUTSIDE_ROOT),
    ("run/../../x", FailureReason.SOURCE_OUTSIDE_ROOT),
    ("escape", FailureReason.SOURCE_OUTSIDE_ROOT),
    ("escape/inside.txt", FailureReason.SOURCE_OUTSIDE_ROOT),
    ("dangling", FailureReason.SOURCE_MISSING),
])
def test_sources_are_refused_by_reason_before_rclone_is_asked_anything(send_dir, tmp_path, source, reason):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "inside.txt").write_text("private")
    os.symlink(outside, send_dir / "escape")
    os.symlink(send_dir / "nothing-here", send_dir / "dangling")
    rc = FakeRc()
    outcome = runner(rc, send_dir, tmp_path).run(command([source]), FakeChannel())
    assert outcome.state == CommandState.FAILED and outcome.reason == reason, outcome
    assert rc.calls == []


def test_a_link_inside_the_send_folder_is_followed_when_named_and_one_leading_out_is_left_and_named(send_dir,
                                                                                                   tmp_path):
    os.symlink(send_dir / "run", send_dir / "alias")
    os.symlink("/etc", send_dir / "run" / "etc-link")
    rc = FakeRc([Frame(finished=True, success=True, stats=stats(1230, 3))])
    channel = FakeChannel()
    outcome = runner(rc, send_dir, tmp_path).run(command(["alias"]), channel)
    assert outcome.state == CommandState.SUCCEEDED
    copy = next(c for c in rc.calls if c[0] == "copy_dir")
    assert copy[1]["_root"] == str(send_dir / "run") and copy[2]["_root"] == "alice-3f2a/from-alice/alias/"
    assert sorted(reported(channel, outcome)) == ["alias/a.bin", "alias/c.txt", "alias/sub dir/b ü.txt"]
    assert [e["message"] for e in channel.events() if e["kind"] == "not_sent"] == [
        "'alias/etc-link' is a symbolic link leading out of the send folder: not followed"]


def test_a_command_without_a_destination_fails_with_a_clear_message(send_dir, tmp_path):
    broken = command()
    del broken["payload"]["destination"]
    outcome = runner(FakeRc(), send_dir, tmp_path).run(broken, FakeChannel())
    assert outcome.reason == FailureReason.AGENT_ERROR and "names no receiver" in outcome.message


def test_an_unreachable_receiver_is_retried_then_failed(send_dir, tmp_path):
    clock = FakeClock()
    tries = []

    def refuse(host, port, timeout):
        tries.append((host, port))
        raise ConnectionRefusedError(111, "Connection refused")

    rc = FakeRc()
    channel = FakeChannel()
    outcome = runner(rc, send_dir, tmp_path, clock=clock, tcp_probe=refuse, attempts=3, retry=5.0).run(
        command(), channel)
    assert outcome.state == CommandState.FAILED and outcome.reason == FailureReason.RECEIVER_UNREACHABLE
    # Each attempt times several connections (the RTT samples); all of them were refused.
    assert tries == [("127.0.0.1", 9000)] * 15
    assert "after 3 attempts over 10 s" in outcome.message and "Connection refused" in outcome.message
    retries = [e for e in channel.events() + outcome.progress["events"] if e["kind"] == "retry"]
    assert len(retries) == 2 and outcome.progress["retries"] == 2
    assert "copy_dir" not in rc.names()


def test_a_receiver_that_answers_on_a_later_attempt_is_used(send_dir, tmp_path):
    # The first attempt's connections are all refused; the second attempt's are taken.
    answers = [ConnectionRefusedError(111, "Connection refused")] * 5

    def probe(host, port, timeout):
        answer = answers.pop(0) if answers else None
        if answer:
            raise answer

    rc = FakeRc([Frame(finished=True, success=True, stats=stats(1230, 3))])
    outcome = runner(rc, send_dir, tmp_path, tcp_probe=probe).run(command(), FakeChannel())
    assert outcome.state == CommandState.SUCCEEDED and outcome.progress["retries"] == 1


def test_wrong_keys_fail_at_once_as_auth_failed(send_dir, tmp_path):
    rc = FakeRc()
    rc.stat_results = [RcError("operations/stat", "operation error S3: ListObjects, https response error "
                                                  "StatusCode: 403, api error InvalidAccessKeyId: nope")]
    outcome = runner(rc, send_dir, tmp_path).run(command(), FakeChannel())
    assert outcome.reason == FailureReason.AUTH_FAILED
    assert "refused the keys for bucket alice-3f2a" in outcome.message
    assert rc.names().count("stat") == 1 and "copy_dir" not in rc.names()


def make_certificate(tmp_path, name):
    from agent.tls import ensure_certificate

    return ensure_certificate(tmp_path / name, ["127.0.0.1"])


def tls_destination(certificate, fingerprint=None):
    return {"endpoint": "https://127.0.0.1:9443", "bucket": "b-1", "prefix": "", "access_key": "AK",
            "secret_key": SECRET, "tls": True, "certificate_pem": certificate.pem,
            "certificate_sha256": fingerprint or certificate.sha256}


def test_a_pinned_certificate_is_checked_then_given_to_rclone_as_the_only_trust(send_dir, tmp_path):
    certificate = make_certificate(tmp_path, "a")
    plain = certificate.sha256.replace(":", "")
    rc = FakeRc([Frame(finished=True, success=True, stats=stats(1230, 3))])
    outcome = runner(rc, send_dir, tmp_path, tls_fingerprint=lambda host, port: plain).run(
        command(destination=tls_destination(certificate)), FakeChannel())
    assert outcome.state == CommandState.SUCCEEDED, outcome
    ca_file = tmp_path / "state" / "certs" / f"{plain}.pem"
    assert ca_file.read_text() == certificate.pem
    for call in rc.calls:
        if call[0] in ("stat", "copy_dir"):
            fs = call[1] if call[0] == "stat" else call[2]
            assert fs["override.ca_cert"] == str(ca_file) and fs["endpoint"] == "https://127.0.0.1:9443"


def test_a_server_presenting_another_certificate_is_a_mismatch(send_dir, tmp_path):
    pinned, presented = make_certificate(tmp_path, "a"), make_certificate(tmp_path, "b")
    rc = FakeRc()
    outcome = runner(rc, send_dir, tmp_path,
                     tls_fingerprint=lambda host, port: presented.sha256.replace(":", "")).run(
        command(destination=tls_destination(pinned)), FakeChannel())
    assert outcome.reason == FailureReason.CERTIFICATE_MISMATCH
    assert presented.sha256.replace(":", "") in outcome.message and "stat" not in rc.names()


def test_a_certificate_that_does_not_match_its_own_fingerprint_is_refused(send_dir, tmp_path):
    certificate = make_certificate(tmp_path, "a")
    outcome = runner(FakeRc(), send_dir, tmp_path).run(
        command(destination=tls_destination(certificate, fingerprint="ab:" * 31 + "ab")), FakeChannel())
    assert outcome.reason == FailureReason.CERTIFICATE_MISMATCH and "not the pinned" in outcome.message


def test_options_map_to_rclone_and_the_limit_is_lifted_afterwards(send_dir, tmp_path):
    rc = FakeRc([Frame(finished=True, success=True, stats=stats(0, 0, checks=3),
                       transferred=[done("a.bin", 1000, checked=True)])])
    channel = FakeChannel()
    outcome = runner(rc, send_dir, tmp_path).run(
        command(overwrite="skip_existing", verify_checksums=False, bandwidth_limit="4M"), channel)
    assert outcome.state == CommandState.SUCCEEDED
    config = next(c for c in rc.calls if c[0] == "copy_dir")[4]
    assert {k: config[k] for k in ("Transfers", "ConnectTimeout", "IgnoreExisting")} == {
        "Transfers": 4, "ConnectTimeout": "15s", "IgnoreExisting": True}
    assert rc.bwlimits == ["4M", "off"]
    # Checksums off: none computed, none claimed.
    assert {row["sha256"] for row in reported(channel, outcome).values()} == {""}


def test_without_a_limit_any_earlier_limit_is_cleared(send_dir, tmp_path):
    rc = FakeRc([Frame(finished=True, success=True, stats=stats(1230, 3))])
    runner(rc, send_dir, tmp_path).run(command(), FakeChannel())
    assert rc.bwlimits == ["off"]


def test_a_job_rclone_lost_is_started_again(send_dir, tmp_path):
    rc = FakeRc([Frame(stats=stats(10, 0))], [Frame(finished=True, success=True, stats=stats(1230, 3))])
    rc.status_errors = [None, JobNotFound("job/status", "job not found")]
    channel = FakeChannel()
    outcome = runner(rc, send_dir, tmp_path).run(command(), channel)
    assert outcome.state == CommandState.SUCCEEDED
    assert rc.names().count("copy_dir") == 2
    assert any(e["kind"] == "retry" and "starting it again" in e["message"]
               for e in channel.events() + outcome.progress["events"])


def test_a_failed_job_names_the_reason_and_the_failing_file(send_dir, tmp_path):
    rc = FakeRc([Frame(finished=True, success=False, error="corrupted on transfer: md5 hashes differ",
                       stats=stats(1000, 0, errors=1),
                       transferred=[done("a.bin", 1000, error="corrupted on transfer: md5 hashes differ")])])
    outcome = runner(rc, send_dir, tmp_path).run(command(), FakeChannel())
    assert outcome.reason == FailureReason.CHECKSUM_MISMATCH and "run/a.bin" in outcome.message
    assert outcome.progress["files"] == [{"path": "run/a.bin", "size": 1000, "sha256": "", "outcome": "failed",
                                          "error": "corrupted on transfer: md5 hashes differ"}]


def test_reports_that_did_not_get_through_are_sent_again_with_the_next_one(send_dir, tmp_path):
    rc = FakeRc([Frame(stats=stats(0, 0), transferred=[done("a.bin", 1000, n=1)]),
                 Frame(stats=stats(1000, 1)), Frame(stats=stats(1000, 1)), Frame(stats=stats(1000, 1)),
                 Frame(stats=stats(1000, 1)), Frame(stats=stats(1000, 1)), Frame(stats=stats(1000, 1)),
                 Frame(finished=True, success=True, stats=stats(1230, 3))])
    channel = FakeChannel(fail_reports=2)
    outcome = runner(rc, send_dir, tmp_path).run(command(), channel)
    delivered = channel.reports[2:] + [outcome.progress]
    start_events = [e for r in delivered for e in r["events"] if e["kind"] == "start"]
    assert len(start_events) == 1
    a_rows = [row for r in delivered for row in r["files"] if row["path"] == "run/a.bin"]
    assert len(a_rows) == 1


def test_a_command_claimed_back_after_a_restart_counts_on_from_its_last_report(send_dir, tmp_path):
    rc = FakeRc([Frame(finished=True, success=True, stats=stats(230, 2, checks=1))])
    channel = FakeChannel()
    outcome = runner(rc, send_dir, tmp_path).run(
        command(state="running", progress={"bytes": 1000, "retries": 2, "errors": 0}), channel)
    assert outcome.progress["bytes"] == 1230 and outcome.progress["retries"] == 2
    first_events = channel.reports[0]["events"]
    assert first_events[0]["kind"] == "resume" and "sent again from its start" in first_events[0]["message"]


def test_a_source_inside_another_is_sent_once(send_dir, tmp_path):
    rc = FakeRc([Frame(finished=True, success=True, stats=stats(1230, 3))])
    channel = FakeChannel()
    runner(rc, send_dir, tmp_path).run(command(["run/c.txt", "run", "run"]), channel)
    assert rc.names().count("copy_dir") == 1 and "copy_file" not in rc.names()
    assert sum(1 for e in channel.events() if e["kind"] == "warning") == 2


@pytest.mark.parametrize("text, reason", [
    ("api error InvalidAccessKeyId: The Access Key Id you provided does not exist", FailureReason.AUTH_FAILED),
    ("api error SignatureDoesNotMatch: The request signature", FailureReason.AUTH_FAILED),
    ('Put "http://127.0.0.1:9/b/k": dial tcp 127.0.0.1:9: connect: connection refused',
     FailureReason.RECEIVER_UNREACHABLE),
    ("tls: failed to verify certificate: x509: certificate signed by unknown authority",
     FailureReason.CERTIFICATE_MISMATCH),
    ("write /data/b/k: no space left on device", FailureReason.RECEIVER_FULL),
    ("corrupted on transfer: md5 hashes differ src 1 vs dst 2", FailureReason.CHECKSUM_MISMATCH),
    ("NoSuchBucket: The specified bucket does not exist", FailureReason.RCLONE_ERROR),
])
def test_rclone_errors_map_to_the_closed_list(text, reason):
    assert classify(text) == reason


def test_parse_refuses_a_bandwidth_limit_rclone_would_misread():
    with pytest.raises(TransferFailed) as refused:
        parse_command(command(bandwidth_limit="10M:off"))
    assert refused.value.reason == FailureReason.AGENT_ERROR


def test_an_rclone_refusal_mid_run_fails_the_command_instead_of_the_agent(send_dir, tmp_path):
    class Refusing(FakeRc):
        def transferred(self, group):
            raise RcError("core/transferred", "stats group not found")

    outcome = runner(Refusing([Frame()]), send_dir, tmp_path).run(command(), FakeChannel())
    assert outcome.state == CommandState.FAILED and outcome.reason == FailureReason.RCLONE_ERROR
    assert "stats group not found" in outcome.message


def test_a_lost_lease_during_the_run_stops_the_job_and_reaches_the_controller(send_dir, tmp_path):
    from agent.loop.portal import CommandGone

    class Gone(FakeChannel):
        def report(self, progress):
            if self.reports:
                raise CommandGone("command c1: lease lost", 409)
            return super().report(progress)

    rc = FakeRc([Frame(stats=stats(1, 0))] * 20)
    with pytest.raises(CommandGone):
        runner(rc, send_dir, tmp_path).run(command(), Gone())
    assert rc.stopped == [1]


def test_after_sending_it_waits_in_the_verifying_phase_for_the_receivers_verdict(send_dir, tmp_path):
    rc = FakeRc([Frame(finished=True, success=True, stats=stats(1230, 3))])
    channel = FakeChannel(verdicts=[{"state": "pending"}, {"state": "pending"},
                                    {"state": "passed", "message": "3 file(s) match at the receiver"}])
    outcome = runner(rc, send_dir, tmp_path).run(command(), channel)
    assert outcome.state == CommandState.SUCCEEDED
    verifying = [r for r in channel.reports if r.get("phase") == "verifying"]
    assert len(verifying) == 3
    # Every file, with its checksum, reached the portal before or with the first verifying report.
    first = channel.reports.index(verifying[0])
    sent_before = {row["path"]: row for r in channel.reports[:first + 1] for row in r["files"]}
    assert set(sent_before) == {"run/a.bin", "run/c.txt", "run/sub dir/b ü.txt"}
    assert all(row["sha256"] for row in sent_before.values())
    assert any(e["kind"] == "verification" and "3 file(s) match" in e["message"]
               for e in channel.events() + outcome.progress["events"])


def test_a_failed_verdict_fails_the_command_with_checksum_mismatch_naming_the_files(send_dir, tmp_path):
    rc = FakeRc([Frame(finished=True, success=True, stats=stats(1230, 3))])
    channel = FakeChannel(verdicts=[{"state": "failed", "files": ["run/c.txt"],
                                     "message": "SHA-256 at the receiver differs from the sender's for run/c.txt"}])
    outcome = runner(rc, send_dir, tmp_path).run(command(), channel)
    assert outcome.state == CommandState.FAILED and outcome.reason == FailureReason.CHECKSUM_MISMATCH
    assert "run/c.txt" in outcome.message


def test_without_checksums_there_is_no_verifying_phase(send_dir, tmp_path):
    rc = FakeRc([Frame(finished=True, success=True, stats=stats(1230, 3))])
    channel = FakeChannel(verdicts=[{"state": "pending"}])
    outcome = runner(rc, send_dir, tmp_path).run(command(verify_checksums=False), channel)
    assert outcome.state == CommandState.SUCCEEDED
    assert not any(r.get("phase") for r in channel.reports)


def test_a_file_rclone_never_listed_and_that_is_not_at_the_receiver_is_missing_not_sent(send_dir, tmp_path):
    """rclone's job succeeds, names no file, and counts 2 transfers for 3 files: the one the destination
    does not hold is failed as missing (never `sent` without evidence), and the transfer says so."""
    rc = FakeRc([Frame(finished=True, success=True, stats=stats(1230, 2))])
    rc.missing = {"sub dir/b ü.txt"}
    channel = FakeChannel()
    outcome = runner(rc, send_dir, tmp_path).run(command(), channel)
    assert outcome.state == CommandState.FAILED and outcome.reason == FailureReason.RCLONE_ERROR
    assert "'run/sub dir/b ü.txt'" in outcome.message and "missing at the receiver" in outcome.message
    results = reported(channel, outcome)
    assert results["run/sub dir/b ü.txt"]["outcome"] == "failed"
    assert results["run/sub dir/b ü.txt"]["error"].startswith("missing at the receiver")
    assert {results[k]["outcome"] for k in ("run/a.bin", "run/c.txt")} == {"sent"}
