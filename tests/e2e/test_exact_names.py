"""Exact names and no silent overwrite (issue 19), with real processes: the portal, Bob's receiver
agent (its own `rclone serve s3` over his receive folder, TLS) and Alice's sender agent (its own
`rclone rcd`).

- A tree of our own making lands with every name and byte exact: 0-byte files, a 1 GiB + 1 byte
  file (sparse), 5,000 tiny files in 50 folders, a 40-deep path, names with a space, a newline, a
  tab, `%?#+&`, a leading `-`, 255 bytes, NFC and NFD pairs; a link inside followed, a link leading
  out not followed and named in the event log, as is the empty folder.
- The NFD `café.txt` sent alone and verified first; then the parent folder twice: the first of those
  leaves that file as it was (bytes and mtime) beside its NFC twin, the second changes nothing at all.
- Names that cannot land exactly (not UTF-8, rclone's quote character, a control picture) are each
  failed with the reason, never renamed; everything else lands; the transfer ends name_unsupported.
- On a receive folder that ignores case (a real one: `rclone mount --vfs-case-insensitive` over FUSE,
  tests/tools/fuse.py), the receiver says so in its heartbeat, and two paths it would take for one file
  are refused before sending, as name_collision naming both: two of the transfer's own, or one of them
  and a file of the other case already there, which stays as it was."""

from __future__ import annotations

import json
import os
import unicodedata
import uuid
from pathlib import Path

import pytest

from tests.harness import Agent, Person, Scratch, sha256, wait_for
from tests.harness.s3 import RCLONE
from tests.tools.fuse import CaseInsensitiveMount, FuseUnavailable
from tests.tools.net import free_port

pytestmark = pytest.mark.e2e
GiB = 2**30
NFC, NFD = unicodedata.normalize("NFC", "café.txt"), unicodedata.normalize("NFD", "café.txt")
DONE = ("succeeded", "failed", "canceled")


class Sites:
    """Bob's receiver granting Alice, and Alice's sender, on 127.0.0.1."""

    def __init__(self, portal, scratch: Scratch, receive_dir: Path | None = None):
        tag = uuid.uuid4().hex[:8]
        self.portal, self.scratch = portal, scratch
        self.alice, self.bob = Person(portal.url, f"alice-names-{tag}"), Person(portal.url, f"bob-names-{tag}")
        self.receive_dir, self.send_dir = receive_dir or scratch / "received", scratch / "send"
        self.receive_dir.mkdir(exist_ok=True)
        self.send_dir.mkdir()
        self.bob_box = self.bob.register("bob-receiver", role="receiver")
        self.alice_box = self.alice.register("alice-sender")
        self.grant = self.bob.call("POST", "/api/v1/grants", 201, json={"grantee": self.alice.username,
                                                                        "receiver": self.bob_box["container_id"]})
        self.receiver = Agent(portal.url, self.bob_box["agent_token"], None, scratch / "bob-state", scratch.path,
                              DTN_RECEIVE_DIR=str(self.receive_dir), DTN_RECEIVER_HOST="127.0.0.1",
                              DTN_RECEIVER_PORT=str(free_port())).start()
        self.sender = Agent(portal.url, self.alice_box["agent_token"], self.send_dir, scratch / "alice-state",
                            scratch.path).start()

        def served():
            rows = self.bob.call("GET", "/api/v1/grants")["given"]
            return any(r["grant_id"] == self.grant["grant_id"] and r["served"] == "ok" for r in rows)

        wait_for(served, 60, "Bob's receiver to serve the grant", 0.3)
        self.landed = self.receive_dir / self.grant["bucket"]

    def send(self, sources: list[str], timeout: float = 600, **options) -> dict:
        transfer_id = self.alice.call("POST", "/api/v1/transfers", 201, json={
            "sender": self.alice_box["container_id"], "receiver": self.bob_box["container_id"],
            "sources": sources, "network_check": "skip", **options})["transfer_id"]
        return self.alice.wait_state(transfer_id, DONE, timeout=timeout)

    def logs(self) -> str:
        return f"--- sender ---\n{self.sender.log()[-4000:]}\n--- receiver ---\n{self.receiver.log()[-3000:]}"

    def close(self):
        for agent in (self.sender, self.receiver):
            agent.stop()


@pytest.fixture
def sites(portal):
    scratch = Scratch("dtn-names-")
    made = None
    try:
        made = Sites(portal, scratch)
        yield made
    finally:
        if made is not None:
            made.close()
        scratch.remove()


def make_tree(root: Path, outside: Path) -> None:
    """The issue's tree under `root` (a folder of the send folder)."""
    (root / "zero").mkdir(parents=True)
    for i in range(3):
        (root / "zero" / f"empty-{i}.bin").touch()
    with open(root / "big.bin", "wb") as big:  # 1 GiB + 1 byte, sparse but for its last byte
        big.seek(GiB)
        big.write(b"\x01")
    for folder in range(50):
        here = root / "many" / f"folder-{folder:02d}"
        here.mkdir(parents=True)
        for index in range(100):
            (here / f"f{index:03d}.txt").write_bytes(f"{folder}/{index}\n".encode())
    deep = root.joinpath(*(f"d{level:02d}" for level in range(40)))
    deep.mkdir(parents=True)
    (deep / "bottom.txt").write_bytes(b"forty folders down\n")
    odd = root / "names"
    odd.mkdir()
    for name in ("with space.txt", "new\nline.txt", "tab\there.txt", "%?#+&.txt", "-leading.txt", "a" * 255,
                 "é" * 127 + "x", NFC, NFD, "x／y (fullwidth solidus).txt", "x␀y.txt", ".hidden", "trailing space "):
        (odd / name).write_bytes(f"the file named {name!r}\n".encode())
    for form in ("NFC", "NFD"):  # folders in both forms too
        folder = odd / unicodedata.normalize(form, "résumé")
        folder.mkdir()
        (folder / "inside.txt").write_bytes(form.encode())
    (root / "empty").mkdir()
    links = root / "links"
    links.mkdir()
    os.symlink("../names/with space.txt", links / "to-a-file-inside")
    os.symlink("../zero", links / "to-a-folder-inside")
    outside.write_bytes(b"not Alice's to send\n")
    os.symlink(outside, links / "to-outside")


def snapshot(root: Path) -> dict[bytes, tuple[str, int]]:
    """Every file under root by its name in bytes: (SHA-256, mtime in ns)."""
    found = {}
    for folder, _, files in os.walk(os.fsencode(root)):
        for name in files:
            path = os.path.join(folder, name)
            found[os.path.relpath(path, os.fsencode(root))] = (sha256(Path(os.fsdecode(path))),
                                                                os.stat(path).st_mtime_ns)
    return found


def expected_landing(tree: Path, send_dir: Path) -> dict[bytes, str]:
    """What must land: every regular file by its exact name, and what the inside links point to under
    the links' names; nothing for the outside link or the empty folder."""
    found = {}
    for folder, dirs, files in os.walk(os.fsencode(tree), followlinks=True):
        for name in files:
            path = os.path.join(folder, name)
            if os.path.islink(path) and not os.path.realpath(path).startswith(os.fsencode(send_dir)):
                continue
            found[os.path.relpath(path, os.fsencode(send_dir))] = sha256(Path(os.fsdecode(path)))
    return found


def test_a_tree_of_every_kind_of_name_lands_exact_and_a_second_send_changes_nothing(sites):
    tree = sites.send_dir / "data"
    make_tree(tree, sites.scratch / "outside.txt")
    expected = expected_landing(tree, sites.send_dir)
    assert len(expected) == 3 + 1 + 5000 + 1 + 13 + 2 + 1 + 3, len(expected)

    # The NFD café.txt alone first, verified at the receiver.
    alone = sites.send([f"data/names/{NFD}"], timeout=120)
    assert alone["state"] == "succeeded", (alone, sites.logs())
    nfd_landed = sites.landed / "data" / "names" / NFD
    before_alone = (nfd_landed.read_bytes(), nfd_landed.stat().st_mtime_ns)

    # Then its parent folder: every name and byte exact; the NFD file untouched beside its NFC twin.
    whole = sites.send(["data"])
    assert whole["state"] == "succeeded", (whole.get("fatal_error"), sites.logs())
    landed = snapshot(sites.landed)
    assert {name: digest for name, (digest, _) in landed.items()} == expected
    assert (nfd_landed.read_bytes(), nfd_landed.stat().st_mtime_ns) == before_alone
    assert (sites.landed / "data" / "names" / NFC).read_bytes() != before_alone[0]
    assert (sites.landed / "data" / "big.bin").stat().st_size == GiB + 1
    files = sites.alice.files(whole["transfer_id"])
    assert len(files) == len(expected)
    assert {row["outcome"] for path, row in files.items() if path != f"data/names/{NFD}"} == {"sent"}
    assert files[f"data/names/{NFD}"]["outcome"] == "skipped"
    assert all(row["receiver_sha256"] == row["sha256"] != "" for row in files.values())
    events = sites.alice.events(whole["transfer_id"])
    said = {(e["kind"], e["message"]) for e in events}
    assert ("not_sent", "'data/links/to-outside' is a symbolic link leading out of the send folder: not followed") \
        in said, sorted(said)
    assert any(kind == "empty_folder" and "'data/empty'" in message for kind, message in said)
    assert any(kind == "link_followed" and "'data/links/to-a-folder-inside'" in message for kind, message in said)
    assert not (sites.landed / "data" / "links" / "to-outside").exists()

    # The parent folder again: nothing at the receiver changes, not a byte, not an mtime.
    again = sites.send(["data"])
    assert again["state"] == "succeeded", (again.get("fatal_error"), sites.logs())
    assert snapshot(sites.landed) == landed
    assert {row["outcome"] for row in sites.alice.files(again["transfer_id"]).values()} == {"skipped"}


def test_names_that_cannot_land_exactly_are_refused_each_and_the_rest_lands(sites):
    folder = sites.send_dir / "mixed"
    folder.mkdir()
    (folder / "fine.txt").write_bytes(b"fine\n")
    for raw in (b"not-utf8-\xff.txt", "quote‛.txt".encode(), "picture␊.txt".encode()):
        with open(os.path.join(os.fsencode(folder), raw), "wb") as handle:
            handle.write(b"never sent\n")

    record = sites.send(["mixed"], timeout=120)
    assert record["state"] == "failed", (record, sites.logs())
    assert record["fatal_error"]["reason"] == "name_unsupported"
    assert "3 file(s) not sent" in record["fatal_error"]["message"]
    assert os.listdir(os.fsencode(sites.landed / "mixed")) == [b"fine.txt"]
    files = sites.alice.files(record["transfer_id"])
    assert files["mixed/fine.txt"]["outcome"] == "sent"
    assert set(files) == {"mixed/fine.txt", "mixed/not-utf8-\\xff.txt", "mixed/quote‛.txt", "mixed/picture␊.txt"}
    for path, word in (("mixed/not-utf8-\\xff.txt", "not valid UTF-8"), ("mixed/quote‛.txt", "U+201B"),
                       ("mixed/picture␊.txt", "U+240A")):
        row = files[path]
        assert row["outcome"] == "failed" and row["error"].startswith("not sent:") and word in row["error"], row


# What a receiver on a folder that ignores case (and keeps Unicode forms apart) must say of it.
CASE_INSENSITIVE = {"case_insensitive": True, "normalization_insensitive": False, "name_max": 255, "keys": "rclone"}


@pytest.fixture
def casefold_sites(portal):
    """Sites whose receiver's receive folder is a case-insensitive mount of `backing`."""
    scratch = Scratch("dtn-casefold-")
    made = None
    try:
        backing = scratch / "backing"
        with CaseInsensitiveMount(RCLONE, backing, scratch / "received", scratch / "mount-cache",
                                  scratch / "mount.log") as mount:
            try:
                made = Sites(portal, scratch, receive_dir=mount.mountpoint)
                made.backing, made.mount = backing, mount
                yield made
            finally:
                if made is not None:
                    made.close()  # the receiver's server out of the mount before it goes
    except FuseUnavailable as missing:
        pytest.skip(f"no case-insensitive folder to receive on: {missing}")
    finally:
        scratch.remove()


def recorded_names(portal, container_id: str):
    """What the portal keeps of a container's heartbeat about its names (health.names)."""
    done = portal.manage("shell", "-c", f"""
import json
from portal.containers.models import Container
print(json.dumps(Container.objects.get(pk="{container_id}").health.get("names")))
""", timeout=60)
    return json.loads(done.stdout.strip().splitlines()[-1])


def says_case_insensitive(sites: Sites, portal) -> None:
    wait_for(lambda: recorded_names(portal, sites.bob_box["container_id"]) == CASE_INSENSITIVE, 30,
             "the receiver's heartbeat to say its folder ignores case", 1)


def test_a_receiver_on_a_folder_that_ignores_case_refuses_two_of_a_transfers_paths_for_one_file(casefold_sites,
                                                                                                portal):
    sites = casefold_sites
    says_case_insensitive(sites, portal)
    folder = sites.send_dir / "cases"
    folder.mkdir()
    (folder / "Data.csv").write_bytes(b"upper\n")
    (folder / "data.csv").write_bytes(b"lower\n")
    (folder / "other.txt").write_bytes(b"other\n")

    record = sites.send(["cases"], timeout=120)
    assert record["state"] == "failed", (record, sites.logs())
    assert record["fatal_error"]["reason"] == "name_collision", record["fatal_error"]
    message = record["fatal_error"]["message"]
    assert "'cases/Data.csv' and 'cases/data.csv'" in message and "ignores case in names" in message, message
    # Nothing landed, neither as the receiver sees its folder nor underneath it.
    assert not (sites.landed / "cases").exists()
    assert not (sites.backing / sites.grant["bucket"] / "cases").exists()


def test_a_receiver_on_a_folder_that_ignores_case_keeps_a_landed_file_from_another_of_its_case(casefold_sites,
                                                                                                portal):
    sites = casefold_sites
    says_case_insensitive(sites, portal)
    run = sites.send_dir / "run"
    run.mkdir()
    (run / "Results.txt").write_bytes(b"the first results\n")
    first = sites.send(["run"], timeout=120, prefix="lab")
    assert first["state"] == "succeeded", (first.get("fatal_error"), sites.logs())
    landed = sites.landed / "lab" / "run" / "Results.txt"
    underneath = sites.backing / sites.grant["bucket"] / "lab" / "run" / "Results.txt"
    wait_for(lambda: underneath.exists() and underneath.read_bytes() == b"the first results\n", 30,
             "the mount to write Results.txt to its backing folder", 0.2)
    before = (landed.read_bytes(), landed.stat().st_mtime_ns)

    # The same folder again, now holding results.txt: on this receiver it would land over Results.txt.
    (run / "Results.txt").unlink()
    (run / "results.txt").write_bytes(b"other results, lower case\n")
    second = sites.send(["run"], timeout=120, prefix="lab")
    assert second["state"] == "failed", (second, sites.logs())
    assert second["fatal_error"]["reason"] == "name_collision", second["fatal_error"]
    message = second["fatal_error"]["message"]
    assert "'run/results.txt' and 'run/Results.txt'" in message and "already at the receiver" in message, message
    assert (landed.read_bytes(), landed.stat().st_mtime_ns) == before
    assert os.listdir(landed.parent) == ["Results.txt"]
    assert os.listdir(underneath.parent) == ["Results.txt"]
    assert underneath.read_bytes() == before[0]

    # Under a prefix and in a folder of the other case: on this receiver the same folders, so the same file
    # (an S3 listing of `Lab/RUN/` shows nothing: the sender looks for the folders as the receiver names them).
    (sites.send_dir / "RUN").mkdir()
    (sites.send_dir / "RUN" / "results.txt").write_bytes(b"other results, lower case\n")
    third = sites.send(["RUN"], timeout=120, prefix="Lab")
    assert third["state"] == "failed", (third, sites.logs())
    assert third["fatal_error"]["reason"] == "name_collision", third["fatal_error"]
    assert "'RUN/results.txt' and 'run/Results.txt'" in third["fatal_error"]["message"], third["fatal_error"]
    assert (landed.read_bytes(), landed.stat().st_mtime_ns) == before
    assert os.listdir(underneath.parent) == ["Results.txt"]
