"""The CLI's formatting, without a server: sizes, durations, the progress line, the parser."""

from __future__ import annotations

import pytest

from portal.cli.__main__ import build_parser, main
from dtn_protocol.progress import fraction
from portal.cli.progress import final_line, human_duration, progress_line


def status(**overrides) -> dict:
    base = {"transfer_id": "t-1", "state": "active", "label": "",
            "files": {"total": 10, "transferred": 3, "verified": 0, "skipped": 1, "failed": 0},
            "bytes": {"total": 400 * 2**20, "transferred": 100 * 2**20, "verified": 0, "skipped": 0, "failed": 0},
            "speed": 50 * 2**20, "effective_speed": 40 * 2**20, "eta": 6, "fatal_error": None,
            "stop_requested": False}
    base.update(overrides)
    return base


@pytest.mark.parametrize("seconds, text", [(None, "--:--"), (-1, "--:--"), (0, "00:00"), (65, "01:05"),
                                           (3 * 3600 + 62, "3:01:02"), (200 * 3600, "8d08h")])
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


def test_the_progress_line_shows_percent_bytes_speed_eta_files_and_state():
    line = progress_line(status(), width=10)
    assert line.startswith("[##--------]  25%")
    for part in ("100.0 MiB/400.0 MiB", "50.0 MiB/s", "ETA 00:06", "files 4/10", "active"):
        assert part in line, line


def test_without_a_bar_for_plain_output_and_stopping_and_failures_are_shown():
    line = progress_line(status(stop_requested=True, files={"total": 10, "transferred": 3, "verified": 0,
                                                            "skipped": 0, "failed": 2}), with_bar=False)
    assert not line.startswith("[")
    assert "2 failed" in line and line.endswith("active (stopping)")


def test_a_queued_transfer_with_nothing_known_yet():
    line = progress_line(status(state="queued", files={}, bytes={}, speed=None, eta=None), width=4)
    assert line.startswith("[....]   ?%")
    assert "0 B/?" in line and "-/s" in line and "ETA --:--" in line and "files 0/?" in line
    assert fraction({"state": "queued"}) is None


def test_a_finished_transfer_shows_its_effective_speed_and_full_bar():
    done = status(state="succeeded", eta=None,
                  bytes={"total": 400 * 2**20, "transferred": 400 * 2**20, "verified": 0, "skipped": 0, "failed": 0})
    line = progress_line(done, width=4)
    assert line.startswith("[####] 100%") and "40.0 MiB/s" in line and "ETA 00:00" in line
    assert final_line(done).startswith("transfer t-1 succeeded: 10 files, 400.0 MiB")
    failed = status(state="failed", fatal_error={"reason": "source_missing", "message": "x does not exist"})
    assert final_line(failed) == "transfer t-1 failed: source_missing: x does not exist"


def test_the_help_documents_every_exit_status(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for code in range(6):
        assert f"\n  {code}  " in out
    for name in ("login", "containers", "transfers", "send", "watch", "stop", "restart", "manifest"):
        assert name in out


def test_no_sign_in_is_a_configuration_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DTN_CONFIG_DIR", str(tmp_path))
    monkeypatch.delenv("DTN_TOKEN", raising=False)
    monkeypatch.delenv("DTN_PORTAL", raising=False)
    assert main(["containers"]) == 2
    assert "dtn login" in capsys.readouterr().err


def test_send_needs_a_receiver_or_an_s3_endpoint_not_both(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DTN_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("DTN_PORTAL", "http://127.0.0.1:9")
    monkeypatch.setenv("DTN_TOKEN", "x")
    assert main(["send", "--from", "a", "f"]) == 2
    assert main(["send", "--from", "a", "--to", "b", "--s3-host", "h", "f"]) == 2
    assert "not both" in capsys.readouterr().err


def test_bytes_sent_again_are_shown_apart_never_as_progress():
    moved = {"total": 400 * 2**20, "transferred": 300 * 2**20, "verified": 0, "skipped": 100 * 2**20, "failed": 0,
             "resent": 12 * 2**20}
    line = progress_line(status(bytes=moved), with_bar=False)
    assert line.startswith("100%") and "400.0 MiB/400.0 MiB" in line and "+12.0 MiB re-sent" in line, line
    assert "re-sent" not in progress_line(status(), with_bar=False)
    done = status(state="succeeded", bytes=moved)
    assert final_line(done).endswith("1 skipped, 12.0 MiB re-sent")
