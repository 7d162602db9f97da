"""A receiver lists one level of a grant's folder for the send page (issue 25): only a bucket it serves,
never outside it; a folder nothing has landed in yet lists empty."""

from __future__ import annotations

import pytest

from agent.receiver.backend import Grant
from agent.receiver.site import ReceiverSite
from agent.tasks import TaskRefused


class FolderBackend:
    certificate = None

    def __init__(self, receive_dir):
        self.receive_dir = receive_dir

    def verify_task(self):
        return lambda params: {}


def site_with(tmp_path, buckets, backend=None):
    site = ReceiverSite(tmp_path / "rclone", None, tmp_path / "state", backend or FolderBackend(tmp_path / "in"))
    site._grants = [Grant(f"g-{b}", b, f"key-{b}", "secret") for b in buckets]
    return site


def test_a_served_grants_folder_is_listed_with_sizes(tmp_path):
    (tmp_path / "in" / "alice-1" / "run-17").mkdir(parents=True)
    (tmp_path / "in" / "alice-1" / "run-17" / "a.bin").write_bytes(b"12345")
    listing = site_with(tmp_path, ["alice-1"]).list_received({"bucket": "alice-1", "path": "run-17"})
    assert listing["path"] == "run-17"
    assert [(e["name"], e["size"]) for e in listing["entries"]] == [("a.bin", 5)]


def test_an_empty_grant_lists_empty(tmp_path):
    (tmp_path / "in").mkdir()
    assert site_with(tmp_path, ["alice-1"]).list_received({"bucket": "alice-1"})["entries"] == []


@pytest.mark.parametrize("params", [{"bucket": "bob-2"}, {"bucket": "../etc"}, {},
                                    {"bucket": "alice-1", "path": "../bob-2"}])
def test_nothing_outside_a_served_grant_is_listed(tmp_path, params):
    (tmp_path / "in" / "alice-1").mkdir(parents=True)
    (tmp_path / "in" / "bob-2").mkdir()
    with pytest.raises(TaskRefused):
        site_with(tmp_path, ["alice-1"]).list_received(params)


def test_minio_is_not_listed(tmp_path):
    backend = FolderBackend(None)
    del backend.receive_dir
    with pytest.raises(TaskRefused, match="MinIO"):
        site_with(tmp_path, ["alice-1"], backend).list_received({"bucket": "alice-1"})
