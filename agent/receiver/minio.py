"""The receiver's S3 side in a MinIO the site already runs (DTN_RECEIVER_S3=minio).

MinIO has users and policies: one server serves every grant, and a grant's key reaches its own
bucket only through the policy attached to it (the agent's own backend, agent/receiver/s3server.py,
gets the same from rclone's auth proxy). For each active grant the agent, with MinIO's root key:

- makes the grant's bucket (S3) if it is not there;
- writes the canned policy `dtn-grant-<grant id>`, allowing that bucket and its objects only;
- adds a user whose access key and secret are the grant's, and attaches that policy.

A revoked grant's user is removed, so MinIO refuses its key from then on, and then its policy; the
bucket and what landed in it stay. What the agent made is remembered in the state dir
(`minio-grants.json`: grant id, access key, bucket; never a secret), so a grant revoked while the
agent was down is removed when it is back. Each grant's user is written once per agent start
(MinIO replaces an existing user's secret), so a key changed meanwhile is put right as well.

MinIO unreachable or its admin API refusing: each grant's health says so, a log line says why
(MinIO's answers never carry a secret), and the next refresh tries again."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import urllib3
from minio import MinioAdmin
from minio.credentials import StaticProvider
from minio.error import InvalidResponseError, MinioAdminException, S3Error, ServerError

from agent import paths
from agent.receiver.backend import Grant, s3_client, tls_pool
from agent.statefile import read_state, write_state
from agent.sidechannel import Located, TaskRefused, verify_each
from agent.tls import Certificate, fingerprint

log = logging.getLogger(__name__)

POLICY_PREFIX = "dtn-grant-"
REGION = "us-east-1"
STATE_FILE = "minio-grants.json"
# MinIO's admin API, a read of its info included, can take longer than an S3 call.
ADMIN_READ_SECONDS = 15


def policy_name(grant_id: str) -> str:
    return f"{POLICY_PREFIX}{grant_id}"


def grant_policy(bucket: str) -> dict:
    """What one grant's key may do: list and locate its bucket, and read, write and delete
    objects in it (multipart uploads included). Nothing names another bucket, and there is no
    s3:ListAllMyBuckets or s3:CreateBucket."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow",
             "Action": ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"],
             "Resource": [f"arn:aws:s3:::{bucket}"]},
            {"Effect": "Allow",
             "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
                        "s3:ListMultipartUploadParts"],
             "Resource": [f"arn:aws:s3:::{bucket}/*"]},
        ],
    }


def free_bytes(info: dict) -> int | None:
    """What a sender can still put into MinIO, from its admin info (madmin's InfoMessage).

    Per pool: the space left on its drives that are online and `ok`, times the data share of the
    standard storage class, data / (data + parity), with data + parity the pool's drives per
    erasure set. Without that layout (an old server, an unknown pool): the least space left on one
    online drive, which an erasure set of any parity can always hold. None without any drive."""
    if "servers" not in info and isinstance(info.get("info"), dict):
        info = info["info"]  # `mc admin info --json` wraps the same message
    drives = [drive for server in info.get("servers") or [] if server.get("state", "online") == "online"
              for drive in server.get("drives") or [] if drive.get("state") == "ok"]
    if not drives:
        return None
    backend = info.get("backend") or {}
    parity, per_set = backend.get("standardSCParity"), backend.get("totalDrivesPerSet") or []
    by_pool: dict[int, int] = {}
    for drive in drives:
        pool = drive.get("pool_index")
        width = per_set[pool] if isinstance(pool, int) and 0 <= pool < len(per_set) else None
        if not (isinstance(parity, int) and isinstance(width, int) and 0 <= parity < width):
            return min(int(d.get("availspace") or 0) for d in drives)
        by_pool[pool] = by_pool.get(pool, 0) + int(drive.get("availspace") or 0)
    return sum(space * (per_set[pool] - parity) // per_set[pool] for pool, space in by_pool.items())


def admin_code(exc: Exception) -> str:
    """MinIO's error code (e.g. XMinioAdminNoSuchUser) from an admin refusal, or ''."""
    try:
        return str(json.loads(getattr(exc, "_body", "") or "{}").get("Code", ""))
    except (ValueError, AttributeError):
        return ""


class MinioUnreachable(Exception):
    """MinIO did not answer earlier in this sync; its message is why."""


# MinIO answered, with a refusal: the server is there, so the other grants are still tried.
REFUSALS = (MinioAdminException, S3Error, ServerError, InvalidResponseError)


def explain(exc: Exception) -> str:
    """One line for the health entry and the log: what failed, never a secret (MinIO's
    answers and the SDK's messages carry none; the keys are only in signed headers)."""
    if isinstance(exc, MinioUnreachable):
        return str(exc)
    if isinstance(exc, MinioAdminException):
        code = admin_code(exc)
        if code:
            return f"MinIO's admin API refused: {code}"
        # MinIO answers its admin API in JSON; anything else is another S3 server, or a proxy.
        return (f"MinIO's admin API refused: status {getattr(exc, '_code', '?')}, not a MinIO answer"
                f" (is DTN_RECEIVER_MINIO_URL a MinIO server?)")
    if isinstance(exc, S3Error):
        return f"MinIO refused: {exc.code}"
    if isinstance(exc, REFUSALS):
        return f"MinIO refused: {type(exc).__name__}: {str(exc)[:200]}"
    # urllib3 wraps the cause (refused, timed out, TLS) in a long message; the cause is the news.
    cause = getattr(exc, "reason", None) if isinstance(exc, urllib3.exceptions.MaxRetryError) else None
    exc = cause or exc
    return f"MinIO unreachable: {type(exc).__name__}: {str(exc)[:200]}"


def minio_admin(config, certificate: Certificate | None) -> MinioAdmin:
    parts = urlsplit(config.url)
    return MinioAdmin(endpoint=parts.netloc, secure=parts.scheme == "https",
                      credentials=StaticProvider(config.root_user.reveal(), config.root_password.reveal()),
                      http_client=tls_pool(certificate, read_timeout=ADMIN_READ_SECONDS))


def minio_certificate(path: Path) -> Certificate:
    """MinIO's public.crt as the portal pins it. The key stays MinIO's: the agent never reads it."""
    pem = path.read_text()
    return Certificate(cert_path=path, key_path=None, pem=pem, sha256=fingerprint(pem))


class MinioGrants:
    """The MinIO backend of a ReceiverSite (agent/receiver/backend.Backend)."""

    def __init__(self, config, state_dir: Path, admin=None, root=None):
        self.url = config.url
        parts = urlsplit(config.url)
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.certificate = minio_certificate(config.cert_file) if config.cert_file else None
        # `admin` and `root` are given by tests: a fake of the admin API, a stand-in S3 server.
        self.admin = admin or minio_admin(config, self.certificate)
        # MinIO's default region, as senders assume it too (agent/netcheck.py): no location lookup first.
        self.root = root or s3_client(self.host, self.port, config.root_user.reveal(),
                                      config.root_password.reveal(), self.certificate, region=REGION)
        self._state_file = state_dir / STATE_FILE
        # grant id -> {"access_key", "bucket"}: what is in MinIO because of this agent, across restarts.
        self._made: dict[str, dict] = self._load()
        # The grants written to MinIO by this process, secret included: written again only on change.
        self._applied: dict[str, Grant] = {}
        self._wanted: dict[str, Grant] = {}
        self._problems: dict[str, str] = {}
        self._free: int | None = None
        self._unreachable: str | None = None

    # --- the surface ReceiverSite uses --------------------------------------------------------------

    def sync(self, grants: list[Grant]) -> None:
        """Make MinIO hold exactly these grants' users and policies; a step that fails is
        tried again on the next sync."""
        self._wanted = {grant.grant_id: grant for grant in grants}
        self._unreachable = None
        for grant_id in [g for g in self._made if g not in self._wanted]:
            self._attempt(grant_id, lambda: self._remove(grant_id))
        for grant_id, grant in self._wanted.items():
            if self._applied.get(grant_id) != grant:
                self._attempt(grant_id, lambda: self._provision(grant))
        self._free = None
        if self._unreachable is None:
            try:
                self._free = free_bytes(json.loads(self.admin.info()))
            except Exception as exc:  # the space is unknown until MinIO answers again
                log.debug("no free space from MinIO: %s", explain(exc))
        self._problems = {g: why for g, why in self._problems.items() if g in self._wanted or g in self._made}

    def endpoints(self) -> list[dict]:
        # `running`: MinIO holds the grant's user; a grant not there yet is listed, with why.
        return [{"grant_id": grant_id, "bucket": grant.bucket, "endpoint": self.url,
                 "running": self._applied.get(grant_id) == grant, "problem": self._problems.get(grant_id)}
                for grant_id, grant in self._wanted.items()]

    def endpoint(self) -> str:
        return self.url

    def health(self, grants: list[Grant]) -> dict[str, str]:
        """Each grant as a sender meets it: MinIO over TLS with its public.crt, with the grant's own
        key, its bucket there. 'ok' or why not."""
        status = {entry["grant_id"]: entry for entry in self.endpoints()}
        results = {}
        for grant in grants:
            entry = status.get(grant.grant_id)
            if entry is None or not entry["running"]:
                results[grant.grant_id] = (entry or {}).get("problem") or "not in MinIO yet"
                continue
            try:
                found = s3_client(self.host, self.port, grant.access_key, grant.secret_key,
                                  self.certificate).bucket_exists(grant.bucket)
                results[grant.grant_id] = "ok" if found else f"bucket {grant.bucket} missing"
            except Exception as exc:  # any S3 or connection failure is this grant's health
                results[grant.grant_id] = f"unhealthy: {type(exc).__name__}: {str(exc)[:200]}"
        return results

    def free_bytes(self) -> int | None:
        return self._free

    def stop_all(self) -> None:
        """Nothing runs here: the users stay while the agent is away (docs/deployment.md)."""

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Until MinIO accepts connections (or raise)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"MinIO at {self.url} not up") from None
                time.sleep(0.05)

    def verify_task(self):
        """`verify_received` over MinIO: objects are not plain files, so each is read back over S3
        with the root key, bounded as the folder's task is (agent/sidechannel.verify_each)."""
        return lambda params: verify_each(params, self._locate, None)

    # --- internals ----------------------------------------------------------------------------------

    def _attempt(self, grant_id: str, step) -> None:
        try:
            if self._unreachable:
                # One connection timeout per sync, not one per grant: the heartbeat waits for this.
                raise MinioUnreachable(self._unreachable)
            step()
        except Exception as exc:  # MinIO down or refusing: reported, retried on the next sync
            why = explain(exc)
            if not isinstance(exc, REFUSALS):
                self._unreachable = why
            if self._problems.get(grant_id) != why:
                log.warning("grant %s: %s; trying again on the next refresh", grant_id, why)
            self._problems[grant_id] = why
        else:
            self._problems.pop(grant_id, None)

    def _provision(self, grant: Grant) -> None:
        made = self._made.get(grant.grant_id)
        if made and made["access_key"] != grant.access_key:
            log.info("grant %s: its key changed; removing the old MinIO user", grant.grant_id)
            self._remove_user(made["access_key"])
        if not self.root.bucket_exists(grant.bucket):
            self.root.make_bucket(grant.bucket)
        name = policy_name(grant.grant_id)
        self.admin.policy_add(name, policy=grant_policy(grant.bucket))
        # Remembered before the user exists: a crash in between still leaves it to be removed.
        self._made[grant.grant_id] = {"access_key": grant.access_key, "bucket": grant.bucket}
        self._save()
        self.admin.user_add(grant.access_key, grant.secret_key)
        try:
            self.admin.attach_policy([name], user=grant.access_key)
        except Exception as exc:
            if admin_code(exc) != "XMinioAdminPolicyChangeAlreadyApplied":
                raise
        self._applied[grant.grant_id] = grant
        log.info("grant %s: MinIO user and policy %s for bucket %s", grant.grant_id, name, grant.bucket)

    def _remove(self, grant_id: str) -> None:
        made = self._made[grant_id]
        self._remove_user(made["access_key"])
        # After the user: MinIO refuses to delete a policy still attached.
        self._ignoring("XMinioAdminNoSuchPolicy", lambda: self.admin.policy_remove(policy_name(grant_id)))
        del self._made[grant_id]
        self._applied.pop(grant_id, None)
        self._save()
        log.info("grant %s revoked: its MinIO user and policy are removed; bucket %s keeps what landed",
                 grant_id, made["bucket"])

    def _remove_user(self, access_key: str) -> None:
        self._ignoring("XMinioAdminNoSuchUser", lambda: self.admin.user_remove(access_key))

    @staticmethod
    def _ignoring(code: str, call) -> None:
        try:
            call()
        except Exception as exc:
            if admin_code(exc) != code:
                raise

    def _locate(self, name: str) -> Located:
        try:
            rel = paths.normalise(name)
        except paths.PathRefused as refused:
            raise TaskRefused(refused.message) from None
        bucket, _, key = rel.partition("/")
        if not key:
            raise TaskRefused("a folder, not a file")
        try:
            size = self.root.stat_object(bucket, key).size
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchBucket", "NoSuchObject"):
                raise TaskRefused(f"{name!r} does not exist in MinIO") from None
            raise
        return Located(rel, size, lambda: self._read(bucket, key))

    @contextlib.contextmanager
    def _read(self, bucket: str, key: str):
        response = self.root.get_object(bucket, key)
        try:
            yield response
        finally:
            response.close()
            response.release_conn()

    def _load(self) -> dict[str, dict]:
        return {grant_id: made for grant_id, made in read_state(self._state_file).items()
                if isinstance(made, dict) and isinstance(made.get("access_key"), str)}

    def _save(self) -> None:
        write_state(self._state_file, self._made)
