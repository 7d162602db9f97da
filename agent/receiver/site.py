"""A receiver site as the controller sees it: after each heartbeat (and when the portal says the
grants changed) fetch the active grants, cheaply (304 while unchanged), and have the backend serve
exactly those; in each heartbeat, report the one address, the certificate senders pin, each grant's
health and the free space."""

from __future__ import annotations

import threading
from pathlib import Path

from agent import names
from agent.receiver.backend import Backend, Grant
from agent.tls import ensure_certificate


def make_backend(rclone: Path, config, state_dir: Path) -> Backend:
    from agent.config import MinioReceiverConfig

    if isinstance(config, MinioReceiverConfig):
        from agent.receiver.minio import MinioGrants

        return MinioGrants(config, state_dir / "receiver")
    from agent.receiver.s3server import SharedServer

    certificate = ensure_certificate(state_dir / "tls", [config.host]) if config.tls else None
    return SharedServer(rclone, config.receive_dir, state_dir / "receiver", config.bind, config.port,
                        certificate, advertise=config.host)


class ReceiverSite:
    def __init__(self, rclone: Path, config, state_dir: Path, backend: Backend | None = None):
        self.config = config
        self.servers = backend or make_backend(rclone, config, state_dir)
        self.certificate = self.servers.certificate
        # The side channel's `verify_received`, over wherever this backend keeps what landed.
        self.verify_received = self.servers.verify_task()
        self._etag: str | None = None
        self._grants: list[Grant] = []
        self.health: dict[str, str] = {}
        # Refreshed after heartbeats (the main loop) and when the portal says the grants changed (the
        # side channel's thread): one at a time, and never described half-synced.
        self._lock = threading.RLock()
        # How the receive folder's filesystem compares names, found once by trying (a MinIO keeps keys exactly).
        receive_dir = getattr(config, "receive_dir", None)
        self.names = names.probe_folder(receive_dir) if receive_dir is not None else {}
        if self.names:
            self.names["keys"] = names.RCLONE_KEYS  # served by rclone's serve s3 (agent/names.py)

    def refresh(self, portal) -> bool:
        """Sync the backend with the portal's grants; True if what the heartbeat reports changed
        (so the controller reports it at once)."""
        with self._lock:
            before = dict(self.health)
            grants, etag = portal.grants(self._etag)
            if grants is not None:
                self._grants = [Grant(str(g["grant_id"]), g["bucket"], g["access_key"], g["secret_key"])
                                for g in grants]
                self._etag = etag
            # Every time, not only on change: a server that died is started again here.
            self.servers.sync(self._grants)
            self.health = self.servers.health(self._grants)
            return self.health != before

    def describe(self) -> dict:
        with self._lock:
            body = {"endpoint": self.servers.endpoint()}
            if self.certificate:
                body["certificate_pem"] = self.certificate.pem
                body["certificate_sha256"] = self.certificate.sha256
            body["health"] = {"grants": self.health}
            if self.names:
                body["health"]["names"] = self.names
            free = self.servers.free_bytes()
            if free is not None:
                body["disk_free_bytes"] = free
            return body

    def list_received(self, params: dict) -> dict:
        """The side channel's `list_received`: one level of a grant's folder, so its grantee sees what is already
        there. Only a bucket this site serves (the portal names it from the grant); MinIO keeps objects, not a
        folder, so it is not listed."""
        from agent.tasks import FolderTasks, TaskRefused

        receive_dir = getattr(self.servers, "receive_dir", None)
        if receive_dir is None:
            raise TaskRefused("this receiver keeps what lands in MinIO: its folders are not listed")
        bucket = params.get("bucket")
        with self._lock:
            served = {grant.bucket for grant in self._grants}
        if not isinstance(bucket, str) or bucket not in served:
            raise TaskRefused("this receiver does not serve that grant (yet): try again in a few seconds")
        folder = Path(receive_dir) / bucket
        if not folder.is_dir():
            return {"path": "", "entries": [], "truncated": False}  # nothing has landed yet
        return FolderTasks(folder).list_folder({"path": params.get("path") or "."})

    def secrets(self) -> list[str]:
        """The grants' secret keys, for the log redactor."""
        return [grant.secret_key for grant in self._grants]

    def stop(self) -> None:
        self.servers.stop_all()
