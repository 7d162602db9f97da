"""Names exactly as they are (agent/names.py, docs/agent.md "Names"): which names are refused and why,
rclone's own form of a name and back, the receive folder's probe, and the walk of a folder with links,
an empty folder and names that cannot land; a collision refused before rclone is called."""

from __future__ import annotations

import os
import unicodedata

import pytest

from agent import names
from agent.sender.ledger import Ledger, list_sources
from dtn_protocol.failures import FailureReason
from dtn_protocol.states import CommandState
from tests.agent.fakes import FakeChannel, FakeRc
from tests.agent.test_transfer import command, runner

NFC, NFD = unicodedata.normalize("NFC", "café.txt"), unicodedata.normalize("NFD", "café.txt")
CARRIED = ["with space.txt", "new\nline", "tab\there", "cr\rx", "%?#+&.txt", "-leading", "a" * 255, "é" * 127 + "x",
           NFC, NFD, "x／y", "x␀y", ".hidden", "trailing ", "deep/" * 40 + "leaf", "del\x7f"]


@pytest.mark.parametrize("name", CARRIED)
def test_names_rclone_carries_exactly_are_not_refused_and_go_to_rclone_and_back_unchanged(name):
    assert names.refusal(name) == ""
    assert names.from_rclone(names.to_rclone(name)) == name
    # In rclone's own form no control character is left: a list of files holds one name a line.
    assert not any(ord(ch) < 0x20 for ch in names.to_rclone(name))


@pytest.mark.parametrize("name, words", [
    (os.fsdecode(b"bad-\xff.txt"), "not valid UTF-8 (byte 0xff at 4)"),
    ("a" * 256, "256 bytes long"),
    ("ok/" + "é" * 128, "256 bytes long"),
    ("quote‛.txt", "U+201B"),
    ("picture␊.txt", "U+240A"),
    ("del␡.txt", "U+2421"),
])
def test_names_that_cannot_land_exactly_are_refused_with_the_reason(name, words):
    assert words in names.refusal(name)


def test_a_receiver_with_a_shorter_name_limit_refuses_longer_parts():
    assert names.refusal("a" * 100, name_max=100) == ""
    assert "at most 100" in names.refusal("a" * 101, name_max=100)


def test_folding_compares_names_as_the_receiving_filesystem_does():
    assert names.fold(NFC, case_insensitive=False, normalization_insensitive=True) == \
        names.fold(NFD, case_insensitive=False, normalization_insensitive=True)
    assert names.fold(NFC, case_insensitive=True, normalization_insensitive=False) != \
        names.fold(NFD, case_insensitive=True, normalization_insensitive=False)
    assert names.fold("Data.CSV", case_insensitive=True, normalization_insensitive=False) == "data.csv"


def test_the_probe_of_a_linux_folder_finds_names_compared_exactly_and_leaves_nothing(tmp_path):
    assert names.probe_folder(tmp_path) == {"case_insensitive": False, "normalization_insensitive": False,
                                            "name_max": 255}
    assert list(tmp_path.iterdir()) == []
    assert names.probe_folder(tmp_path / "gone") == {}


@pytest.mark.e2e
def test_the_probe_of_a_folder_that_ignores_case_finds_it_so_and_leaves_nothing(tmp_path):
    """On a real case-insensitive folder (rclone mount over FUSE, tests/tools/fuse.py) that keeps Unicode
    forms apart: the probe must tell the two apart."""
    from tests.harness.s3 import RCLONE
    from tests.tools.fuse import CaseInsensitiveMount, FuseUnavailable

    try:
        with CaseInsensitiveMount(RCLONE, tmp_path / "backing", tmp_path / "mnt", tmp_path / "cache",
                                  tmp_path / "mount.log") as mount:
            found = names.probe_folder(mount.mountpoint)
            left = os.listdir(mount.mountpoint)
    except FuseUnavailable as missing:
        pytest.skip(f"no case-insensitive folder to probe: {missing}")
    assert found == {"case_insensitive": True, "normalization_insensitive": False, "name_max": 255}
    assert left == [] and os.listdir(tmp_path / "backing") == []


def test_the_walk_follows_links_inside_names_those_left_the_empty_folders_and_the_refused(tmp_path):
    send = tmp_path / "send"
    tree = send / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "a.txt").write_bytes(b"a")
    (tree / "empty" / "emptier").mkdir(parents=True)
    (tree / "links").mkdir()
    os.symlink("../sub/a.txt", tree / "links" / "file-inside")
    os.symlink("../sub", tree / "links" / "folder-inside")
    os.symlink("..", tree / "links" / "loop")
    os.symlink("/etc/hostname", tree / "links" / "outside")
    os.symlink("nothing-here", tree / "links" / "dangling")
    with open(os.path.join(os.fsencode(tree), b"bad-\xff"), "wb") as handle:
        handle.write(b"x")
    os.mkfifo(tree / "pipe")
    ledger = Ledger()
    listing = list_sources(send, ["tree"], ledger)
    [plan] = listing.plans
    assert sorted(plan.files) == ["links/file-inside", "links/folder-inside/a.txt", "sub/a.txt"]
    assert plan.files["links/file-inside"].path == (tree / "sub" / "a.txt").resolve()
    assert plan.follow_links and plan.needs_list
    assert sorted(listing.followed) == ["tree/links/file-inside", "tree/links/folder-inside"]
    assert dict(listing.left_out) == {
        "tree/links/loop": "is a symbolic link to a folder it is inside: not followed",
        "tree/links/outside": "is a symbolic link leading out of the send folder: not followed",
        "tree/links/dangling": "is a symbolic link to nothing",
        "tree/pipe": "is not a regular file (a device, pipe or socket)"}
    assert listing.empty == ["tree/empty"]
    [refused] = listing.refused
    assert refused.key == "tree/bad-\\xff" and refused.outcome == "failed" and "not valid UTF-8" in refused.error
    assert ledger.count == 4 and ledger.counts["failed"] == 1


def test_two_paths_a_case_insensitive_receiver_would_take_for_one_are_refused_before_rclone(tmp_path):
    send = tmp_path / "send"
    (send / "run").mkdir(parents=True)
    (send / "run" / "Data.csv").write_bytes(b"upper")
    (send / "run" / "data.csv").write_bytes(b"lower")
    destination = {"endpoint": "http://127.0.0.1:9000", "bucket": "b", "prefix": "", "access_key": "AK",
                   "secret_key": "s" * 30, "tls": False, "certificate_pem": None, "certificate_sha256": None,
                   "names": {"case_insensitive": True, "normalization_insensitive": False, "name_max": 255}}
    rc = FakeRc()
    outcome = runner(rc, send, tmp_path).run(command(["run"], destination=destination), FakeChannel())
    assert outcome.state == CommandState.FAILED and outcome.reason == FailureReason.NAME_COLLISION
    assert "'run/Data.csv' and 'run/data.csv'" in outcome.message and "ignores case" in outcome.message
    assert not {"copy_dir", "copy_file", "stat"} & set(rc.names())


def test_a_path_that_would_land_on_a_file_of_another_case_already_there_is_refused_before_sending(tmp_path):
    send = tmp_path / "send"
    (send / "run").mkdir(parents=True)
    (send / "run" / "data.csv").write_bytes(b"new")
    destination = {"endpoint": "http://127.0.0.1:9000", "bucket": "b", "prefix": "", "access_key": "AK",
                   "secret_key": "s" * 30, "tls": False, "certificate_pem": None, "certificate_sha256": None,
                   "names": {"case_insensitive": True}}
    rc = FakeRc()
    rc.there = [{"Path": "Data.csv", "Size": 3}]
    outcome = runner(rc, send, tmp_path).run(command(["run"], destination=destination, network_check="skip"),
                                             FakeChannel())
    assert outcome.reason == FailureReason.NAME_COLLISION, outcome
    assert "'run/data.csv' and 'run/Data.csv'" in outcome.message and "already at the receiver" in outcome.message
    assert not {"copy_dir", "copy_file"} & set(rc.names())
    # A receiver comparing names exactly holds both.
    rc = FakeRc()
    rc.there = [{"Path": "Data.csv", "Size": 3}]
    exact = {**destination, "names": {}}
    assert runner(rc, send, tmp_path).run(command(["run"], destination=exact), FakeChannel()).state == \
        CommandState.SUCCEEDED


def test_a_path_whose_folder_is_there_in_another_case_is_matched_in_that_folder(tmp_path):
    """On a filesystem that ignores case, `run/data.csv` lands in the `Run` folder already there, over its
    `Data.csv`: the check lists `Run` (an S3 listing of `run` would be empty), the prefix's folders too."""
    send = tmp_path / "send"
    (send / "run").mkdir(parents=True)
    (send / "run" / "data.csv").write_bytes(b"new")
    destination = {"endpoint": "http://127.0.0.1:9000", "bucket": "b", "prefix": "lab", "access_key": "AK",
                   "secret_key": "s" * 30, "tls": False, "certificate_pem": None, "certificate_sha256": None,
                   "names": {"case_insensitive": True}}
    rc = FakeRc()
    rc.folders_there = {"b/": ["Lab", "other"], "b/Lab/": ["Run"]}
    rc.there = [{"Path": "Data.csv", "Size": 3}]
    outcome = runner(rc, send, tmp_path).run(command(["run"], destination=destination, network_check="skip"),
                                             FakeChannel())
    assert outcome.reason == FailureReason.NAME_COLLISION, outcome
    assert "'run/data.csv' and 'Run/Data.csv'" in outcome.message, outcome.message
    assert [call[1]["_root"] for call in rc.calls if call[0] == "list_files"] == ["b/Lab/Run/"]
    assert not {"copy_dir", "copy_file"} & set(rc.names())


def test_a_path_longer_than_an_s3_key_holds_is_refused_but_not_toward_rclones_serve_s3():
    deep = "/".join(["d" * 100] * 10) + "/leaf-1234.txt"  # 1,023 bytes: with a prefix "p/", over 1,024
    assert names.refusal(deep, key_room=1024) == ""
    assert "at most 1022 more" in names.refusal(deep, key_room=1022)
    from agent.sender.destination import parse_destination

    base = {"endpoint": "https://minio.example.org:9000", "bucket": "b", "prefix": "p", "access_key": "AK",
            "secret_key": "s" * 30}
    assert parse_destination(base).key_room == 1022
    assert parse_destination({**base, "names": {"keys": "rclone"}}).key_room is None
