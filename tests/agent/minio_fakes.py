"""In-process stand-ins for the MinIO backend's unit tests (agent/receiver/minio.py).

`FakeAdmin` plays the part of MinIO's admin API that the backend calls through `minio.MinioAdmin`,
answering as MinIO does: the same methods and arguments as minio-py's MinioAdmin, and MinIO's error
codes in a `MinioAdminException` body (XMinioAdminNoSuchUser, XMinioAdminNoSuchPolicy,
XMinioAdminPolicyChangeAlreadyApplied; a policy still attached cannot be removed). No MinIO server
can be had on this machine, so this fake is the only admin API the tests meet; the S3 side is
tested against a real server in tests/e2e/test_receiver_minio.py.

`FakeBuckets` is the root key's S3 client, for the sync logic only (bucket_exists, make_bucket)."""

from __future__ import annotations

import copy
import json

import urllib3
from minio.error import MinioAdminException


def refusal(status: int, code: str, message: str = "") -> MinioAdminException:
    return MinioAdminException(str(status), json.dumps({"Code": code, "Message": message or code}))


class FakeAdmin:
    def __init__(self, info: dict | None = None):
        self.users: dict[str, str] = {}  # access key -> secret key
        self.policies: dict[str, dict] = {}
        self.attached: dict[str, set[str]] = {}  # access key -> policy names
        self.info_message = info or {}
        self.calls: list[str] = []
        self.down = False
        self.refuse: dict[str, MinioAdminException] = {}  # method -> what it answers instead

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.down:
            raise urllib3.exceptions.MaxRetryError(None, "/minio/admin/v3/" + name,
                                                   reason=ConnectionRefusedError(111, "Connection refused"))
        if name in self.refuse:
            raise self.refuse[name]

    def policy_add(self, policy_name, policy_file=None, policy=None):
        self._call("policy_add")
        assert policy_file is None and policy is not None
        # Stored as MinIO would: what went over the wire, not the caller's object.
        self.policies[policy_name] = json.loads(json.dumps(policy))
        return ""

    def policy_remove(self, policy_name):
        self._call("policy_remove")
        if policy_name not in self.policies:
            raise refusal(404, "XMinioAdminNoSuchPolicy")
        if any(policy_name in names for names in self.attached.values()):
            raise refusal(400, "XMinioIAMPolicyInUse", "policy is attached to a user")
        del self.policies[policy_name]
        return ""

    def user_add(self, access_key, secret_key):
        self._call("user_add")
        self.users[access_key] = secret_key  # an existing user's secret is replaced
        self.attached.setdefault(access_key, set())
        return ""

    def user_remove(self, access_key):
        self._call("user_remove")
        if access_key not in self.users:
            raise refusal(404, "XMinioAdminNoSuchUser")
        del self.users[access_key]
        self.attached.pop(access_key, None)
        return ""

    def attach_policy(self, policies, user=None, group=None):
        self._call("attach_policy")
        if user not in self.users:
            raise refusal(404, "XMinioAdminNoSuchUser")
        if not set(policies) <= set(self.policies):
            raise refusal(404, "XMinioAdminNoSuchPolicy")
        if set(policies) <= self.attached[user]:
            raise refusal(400, "XMinioAdminPolicyChangeAlreadyApplied",
                          "The specified policy change is already in effect.")
        self.attached[user] |= set(policies)
        return ""

    def info(self):
        self._call("info")
        return json.dumps(self.info_message)

    def policy_of(self, access_key: str) -> dict:
        """The one policy a user holds (the test's view)."""
        (name,) = self.attached[access_key]
        return copy.deepcopy(self.policies[name])


class FakeBuckets:
    def __init__(self):
        self.buckets: set[str] = set()

    def bucket_exists(self, bucket):
        return bucket in self.buckets

    def make_bucket(self, bucket):
        self.buckets.add(bucket)


def drive(avail: int, *, state: str = "ok", pool: int = 0, set_index: int = 0, index: int = 0,
          total: int = 2_000_000_000_000) -> dict:
    """One drive as madmin's Disk marshals it (json tags of github.com/minio/madmin-go info-commands.go)."""
    return {"endpoint": f"http://minio{index}:9000/data{index}", "path": f"/data{index}", "state": state,
            "uuid": f"6f0c{index:04d}-2c1a-4b1e-9d7e-000000000000", "major": 8, "minor": 16 * index,
            "totalspace": total, "usedspace": total - avail, "availspace": avail, "used_inodes": 1200,
            "free_inodes": 120_000_000, "local": True, "pool_index": pool, "set_index": set_index,
            "disk_index": index}


def info_message(drives_by_server: list[list[dict]], *, parity: int | None, per_set: list[int] | None,
                 backend_type: str = "Erasure", offline_servers: tuple[int, ...] = ()) -> dict:
    """An InfoMessage as GET /minio/admin/v3/info answers it (madmin-go's InfoMessage, ErasureBackend,
    ServerProperties), trimmed of what the backend does not read but keeping its shape."""
    backend = {"backendType": backend_type, "onlineDisks": sum(len(d) for d in drives_by_server),
               "offlineDisks": 0, "rrSCParity": 1}
    if parity is not None:
        backend["standardSCParity"] = parity
    if per_set is not None:
        backend["totalSets"] = [1] * len(per_set)
        backend["totalDrivesPerSet"] = per_set
    return {
        "mode": "online", "deploymentID": "3d6a83f0-8b13-49e0-bd0e-3a921f256a6c", "region": "us-east-1",
        "buckets": {"count": 2}, "objects": {"count": 120}, "usage": {"size": 52_428_800},
        "backend": backend,
        "servers": [{"state": "offline" if number in offline_servers else "online",
                     "endpoint": f"minio{number}:9000", "scheme": "http", "uptime": 86400,
                     "version": "2025-09-07T16:13:09Z", "commitID": "07c3a429bfed433e49018cb0f78a52145d4bedeb",
                     "network": {f"minio{number}:9000": "online"}, "drives": drives, "poolNumber": 1,
                     "mem_stats": {"Alloc": 1, "TotalAlloc": 1, "Mallocs": 1, "Frees": 1, "HeapAlloc": 1}}
                    for number, drives in enumerate(drives_by_server)],
    }
