"""The MinIO backend's bookkeeping (agent/receiver/minio.py): which users, policies and buckets it
makes, changes and removes as grants come and go, across agent restarts; what it says when MinIO
is down or refuses; and the free space it reads from MinIO's admin info.

The admin API here is tests/agent/minio_fakes.FakeAdmin: no MinIO server can be had on this
machine. The S3 half (buckets, the grant's key, TLS, reading objects back) runs against a real
S3 server in tests/e2e/test_receiver_minio.py."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from agent.config import MinioReceiverConfig, Secret
from agent.receiver.backend import Grant
from agent.receiver.minio import MinioGrants, free_bytes, grant_policy
from tests.agent.minio_fakes import FakeAdmin, FakeBuckets, drive, info_message

URL = "https://receiver.example.org:9000"
ROOT_PASSWORD = "root-password-never-logged"
ALICE = Grant("g-alice", "alice-3f2a", "DTNGALICE0000000001", "alice-secret-key-0123456789abcdef")
CHARLIE = Grant("g-charlie", "charlie-77b1", "DTNGCHARLIE00000001", "charlie-secret-key-0123456789abcd")
SINGLE_DRIVE = info_message([[drive(750_000_000_000)]], parity=0, per_set=[1])


class World:
    """One MinIO (the fakes) and the agents that come and go over one state dir."""

    def __init__(self, tmp_path):
        self.state_dir = tmp_path / "receiver"
        self.admin = FakeAdmin(SINGLE_DRIVE)
        self.buckets = FakeBuckets()
        self.config = MinioReceiverConfig(url=URL, root_user=Secret("minio-admin"),
                                          root_password=Secret(ROOT_PASSWORD), cert_file=None)

    def agent(self) -> MinioGrants:
        """An agent (re)started with the same state dir."""
        return MinioGrants(self.config, self.state_dir, admin=self.admin, root=self.buckets)


@pytest.fixture
def world(tmp_path):
    return World(tmp_path)


def statements_of(policy: dict) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    return [(tuple(s["Action"]), tuple(s["Resource"])) for s in policy["Statement"]]


def test_a_grant_gets_its_bucket_a_policy_naming_only_that_bucket_and_a_user_with_its_key(world):
    backend = world.agent()
    backend.sync([ALICE])
    assert world.buckets.buckets == {ALICE.bucket}
    assert world.admin.users == {ALICE.access_key: ALICE.secret_key}
    assert world.admin.attached == {ALICE.access_key: {"dtn-grant-g-alice"}}
    policy = world.admin.policy_of(ALICE.access_key)
    assert policy["Version"] == "2012-10-17"
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])
    assert statements_of(policy) == [
        (("s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"),
         ("arn:aws:s3:::alice-3f2a",)),
        (("s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
          "s3:ListMultipartUploadParts"), ("arn:aws:s3:::alice-3f2a/*",)),
    ]
    assert backend.endpoints() == [{"grant_id": "g-alice", "bucket": ALICE.bucket, "endpoint": URL,
                                    "running": True, "problem": None}]
    assert backend.endpoint() == URL


def test_each_grants_policy_names_its_own_bucket_and_nothing_else(world):
    world.agent().sync([ALICE, CHARLIE])
    for grant in (ALICE, CHARLIE):
        text = json.dumps(world.admin.policy_of(grant.access_key))
        others = {ALICE.bucket, CHARLIE.bucket} - {grant.bucket}
        assert grant.bucket in text and not any(other in text for other in others)
        # No wildcard bucket, no listing of every bucket, no making of buckets.
        resources = [r for s in world.admin.policy_of(grant.access_key)["Statement"] for r in s["Resource"]]
        assert all(r.startswith(f"arn:aws:s3:::{grant.bucket}") for r in resources)
        assert "ListAllMyBuckets" not in text and "CreateBucket" not in text and '"s3:*"' not in text


def test_a_revoked_grant_loses_its_user_then_its_policy_and_keeps_its_bucket(world):
    backend = world.agent()
    backend.sync([ALICE, CHARLIE])
    backend.sync([CHARLIE])
    assert set(world.admin.users) == {CHARLIE.access_key}
    assert set(world.admin.policies) == {"dtn-grant-g-charlie"}
    assert world.buckets.buckets == {ALICE.bucket, CHARLIE.bucket}
    assert [e["grant_id"] for e in backend.endpoints()] == ["g-charlie"]
    # Revoking again changes nothing and asks MinIO nothing more.
    calls = len(world.admin.calls)
    backend.sync([CHARLIE])
    assert world.admin.calls[calls:] == ["info"]


def test_a_changed_key_replaces_the_old_user_and_a_changed_secret_is_written(world):
    backend = world.agent()
    backend.sync([ALICE])
    rotated = Grant(ALICE.grant_id, ALICE.bucket, "DTNGALICE0000000002", "alice-new-secret-0123456789abcdef")
    backend.sync([rotated])
    assert world.admin.users == {rotated.access_key: rotated.secret_key}
    assert world.admin.attached == {rotated.access_key: {"dtn-grant-g-alice"}}
    resecreted = Grant(ALICE.grant_id, ALICE.bucket, rotated.access_key, "alice-third-secret-0123456789abcd")
    backend.sync([resecreted])
    assert world.admin.users == {rotated.access_key: resecreted.secret_key}
    assert backend.endpoints()[0]["running"] is True


def test_a_restarted_agent_writes_the_same_grants_again_without_error(world):
    world.agent().sync([ALICE, CHARLIE])
    users, policies, attached = dict(world.admin.users), dict(world.admin.policies), dict(world.admin.attached)
    again = world.agent()
    again.sync([ALICE, CHARLIE])
    assert (world.admin.users, world.admin.policies, world.admin.attached) == (users, policies, attached)
    # MinIO answered "already in effect" to the second attach; that is success, not a problem.
    assert [(e["running"], e["problem"]) for e in again.endpoints()] == [(True, None), (True, None)]
    assert world.admin.calls.count("attach_policy") == 4


def test_a_grant_revoked_while_the_agent_was_down_is_removed_when_it_is_back(world):
    world.agent().sync([ALICE, CHARLIE])
    world.agent().sync([CHARLIE])  # the next agent never heard of Alice's grant but for the state dir
    assert set(world.admin.users) == {CHARLIE.access_key}
    assert set(world.admin.policies) == {"dtn-grant-g-charlie"}
    remembered = json.loads((world.state_dir / "minio-grants.json").read_text())
    assert remembered == {"g-charlie": {"access_key": CHARLIE.access_key, "bucket": CHARLIE.bucket}}


def test_a_key_changed_while_the_agent_was_down_replaces_the_old_user(world):
    world.agent().sync([ALICE])
    rotated = Grant(ALICE.grant_id, ALICE.bucket, "DTNGALICE0000000002", "alice-new-secret-0123456789abcdef")
    world.agent().sync([rotated])
    assert world.admin.users == {rotated.access_key: rotated.secret_key}


def test_the_state_dir_holds_no_secret(world):
    world.agent().sync([ALICE, CHARLIE])
    text = "".join(path.read_text() for path in world.state_dir.iterdir())
    assert ALICE.secret_key not in text and CHARLIE.secret_key not in text and ROOT_PASSWORD not in text


def test_minio_down_is_each_grants_health_one_log_line_and_retried(world, caplog):
    backend = world.agent()
    world.admin.down = True
    caplog.set_level(logging.WARNING, logger="agent.receiver.minio")
    backend.sync([ALICE, CHARLIE])
    entries = backend.endpoints()
    assert [e["running"] for e in entries] == [False, False]
    assert all(e["problem"] == "MinIO unreachable: ConnectionRefusedError: [Errno 111] Connection refused"
               for e in entries)
    # One connection attempt per sync, not one per grant: the heartbeat waits for this.
    assert world.admin.calls == ["policy_add"] and backend.free_bytes() is None
    backend.sync([ALICE, CHARLIE])
    assert len(caplog.records) == 2  # once per grant, not again while the reason is the same
    assert ROOT_PASSWORD not in caplog.text and ALICE.secret_key not in caplog.text
    world.admin.down = False
    backend.sync([ALICE, CHARLIE])
    assert [(e["running"], e["problem"]) for e in backend.endpoints()] == [(True, None), (True, None)]
    assert backend.free_bytes() == 750_000_000_000


def test_an_admin_refusal_is_that_grants_health_and_the_others_are_still_served(world):
    from tests.agent.minio_fakes import refusal

    backend = world.agent()
    world.admin.refuse["user_add"] = refusal(403, "XMinioAdminAccessDenied")
    backend.sync([ALICE])
    world.admin.refuse.clear()
    backend.sync([ALICE, CHARLIE])  # Alice's is retried, Charlie's made
    assert [(e["grant_id"], e["running"]) for e in backend.endpoints()] == [("g-alice", True), ("g-charlie", True)]
    world.admin.refuse["attach_policy"] = refusal(403, "XMinioAdminAccessDenied")
    third = Grant("g-dave", "dave-0001", "DTNGDAVE00000000001", "dave-secret-key-0123456789abcdefgh")
    backend.sync([ALICE, CHARLIE, third])
    assert backend.endpoints()[2] == {"grant_id": "g-dave", "bucket": "dave-0001", "endpoint": URL,
                                      "running": False, "problem": "MinIO's admin API refused: XMinioAdminAccessDenied"}
    # The user exists but holds no policy: it can reach nothing, and is remembered for removal.
    assert world.admin.attached[third.access_key] == set()
    world.admin.refuse.clear()
    backend.sync([ALICE, CHARLIE])
    assert third.access_key not in world.admin.users


def test_a_revocation_minio_refused_is_tried_again(world):
    backend = world.agent()
    backend.sync([ALICE])
    world.admin.down = True
    backend.sync([])
    assert ALICE.access_key in world.admin.users
    world.admin.down = False
    backend.sync([])
    assert world.admin.users == {} and world.admin.policies == {}


def test_the_policy_is_the_one_the_docs_show():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "deployment.md").read_text()
    shown = doc.split("```json\n", 1)[1].split("```", 1)[0]
    assert json.loads(shown) == grant_policy("<bucket>")


# --- free space ------------------------------------------------------------------------------------


def test_a_single_drive_minio_has_its_drives_space():
    assert free_bytes(SINGLE_DRIVE) == 750_000_000_000


def test_an_erasure_set_counts_online_drives_times_the_data_share():
    # 4 drives per set, parity 2 (EC:2): half of what is left is data. One drive is offline.
    drives = [drive(1_000_000_000_000, index=0), drive(1_000_000_000_000, index=1),
              drive(800_000_000_000, index=2), drive(900_000_000_000, state="offline", index=3)]
    info = info_message([drives[:2], drives[2:]], parity=2, per_set=[4])
    assert free_bytes(info) == (1_000_000_000_000 * 2 + 800_000_000_000) * 2 // 4


def test_each_pool_counts_with_its_own_set_width_and_offline_servers_do_not_count():
    pool0 = [drive(400, pool=0, index=i) for i in range(4)]
    pool1 = [drive(1000, pool=1, index=i) for i in range(8)]
    gone = [drive(10**15, pool=1, index=9)]
    info = info_message([pool0, pool1, gone], parity=2, per_set=[4, 8], offline_servers=(2,))
    assert free_bytes(info) == 1600 * 2 // 4 + 8000 * 6 // 8


def test_without_the_layout_the_least_space_on_one_drive_is_reported():
    drives = [drive(300, index=0), drive(500, index=1), drive(100, state="faulty", index=2)]
    assert free_bytes(info_message([drives], parity=None, per_set=None)) == 300
    assert free_bytes(info_message([drives], parity=2, per_set=[2])) == 300  # parity >= width: not believable
    assert free_bytes(info_message([[drive(300, pool=-1)]], parity=0, per_set=[1])) == 300


def test_no_drive_online_is_no_figure_and_mc_admin_info_json_reads_the_same():
    assert free_bytes(info_message([[drive(300, state="offline")]], parity=0, per_set=[1])) is None
    assert free_bytes({}) is None
    assert free_bytes({"status": "success", "info": SINGLE_DRIVE}) == 750_000_000_000
