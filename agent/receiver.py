"""The receiver's S3 side: one `rclone serve s3` per active grant.

`rclone serve s3` treats all its keys alike, so one server for every grant
would let one sender read and overwrite another's files. Each grant instead
gets its own server, on its own port, whose only root is a `combine` remote
with a single upstream: the bucket name mapped to `<receive folder>/<bucket>`.
That key can list, read and write that bucket and nothing else, cannot create
buckets, and objects land as plain files at `<receive folder>/<bucket>/<key>`.

Keys reach rclone only through its environment; argv shows no secret."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.tls import Certificate, ensure_certificate

log = logging.getLogger(__name__)

# serve s3 caches directory listings (5 min by default); a short cache keeps
# what Bob sees through S3 in step with his folder.
DIR_CACHE_TIME = "5s"


@dataclass(frozen=True)
class Grant:
    grant_id: str
    bucket: str
    access_key: str
    secret_key: str = field(repr=False)


@dataclass
class Served:
    grant: Grant
    port: int
    process: subprocess.Popen
    started_at: float
    restarts: int = 0


class PortRangeExhausted(Exception):
    pass


def csv_quote(value: str) -> str:
    """rclone reads list-valued flags from the environment as CSV."""
    return '"' + value.replace('"', '""') + '"'


class GrantServers:
    """The rclone backend of a ReceiverSite; agent/minio_grants.py is the other, with the same surface."""

    # What the heartbeat says of each grant: the portal keeps the endpoint of each.
    reported = ("grant_id", "endpoint")

    def __init__(self, rclone: Path, receive_dir: Path, state_dir: Path, host: str,
                 ports: range, certificate: Certificate | None = None, advertise: str | None = None):
        self.rclone = rclone
        self.receive_dir = receive_dir
        self.state_dir = state_dir
        self.host = host
        # The name senders use, when it differs from the address listened on.
        self.advertise = advertise or host
        self.ports = ports
        self.certificate = certificate
        self._served: dict[str, Served] = {}
        # Ports are remembered so a grant keeps its endpoint across agent restarts.
        self._ports_file = state_dir / "grant-ports.json"
        self._ports: dict[str, int] = self._load_ports()

    # --- public surface -------------------------------------------------

    def sync(self, grants: list[Grant]) -> None:
        """Serve exactly these grants: start new ones, stop revoked ones,
        restart one whose key changed or whose process died."""
        wanted = {grant.grant_id: grant for grant in grants}
        for grant_id in list(self._served):
            if grant_id not in wanted:
                log.info("grant %s revoked: stopping its S3 server", grant_id)
                self._stop(self._served.pop(grant_id))
                self._ports.pop(grant_id, None)
        for grant_id, grant in wanted.items():
            served = self._served.get(grant_id)
            if served is not None and served.grant != grant:
                log.info("grant %s changed: restarting its S3 server", grant_id)
                self._stop(self._served.pop(grant_id))
                served = None
            if served is not None and served.process.poll() is not None:
                log.warning("S3 server of grant %s exited with %s: restarting", grant_id, served.process.returncode)
                restarts = served.restarts + 1
                self._served.pop(grant_id)
                self._start(grant).restarts = restarts
            elif served is None:
                self._start(grant)
        self._save_ports()

    def endpoints(self) -> list[dict]:
        scheme = "https" if self.certificate else "http"
        return [{"grant_id": s.grant.grant_id, "bucket": s.grant.bucket, "port": s.port,
                 "endpoint": f"{scheme}://{_host_for_url(self.advertise)}:{s.port}",
                 "running": s.process.poll() is None, "restarts": s.restarts}
                for s in self._served.values()]

    def bucket_dir(self, bucket: str) -> Path:
        return self.receive_dir / bucket

    def site_endpoint(self) -> str:
        scheme = "https" if self.certificate else "http"
        return f"{scheme}://{_host_for_url(self.advertise)}"

    def address(self, endpoint: dict) -> tuple[str, int]:
        """Where this agent reaches a grant's server to check it."""
        return _connect_host(self.host), endpoint["port"]

    def free_bytes(self) -> int | None:
        try:
            return shutil.disk_usage(self.receive_dir).free
        except OSError:
            return None

    def verify_task(self):
        """`verify_received`: what landed is read from the receive folder. Reading every byte of it
        is the point, so no per-task cap (the portal sizes the task's deadline to the data)."""
        from agent.sidechannel import FolderTasks

        return FolderTasks(self.receive_dir, max_bytes=None).verify_files

    def stop_all(self) -> None:
        for served in self._served.values():
            self._stop(served)
        self._served.clear()

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Until every server accepts connections (or raise)."""
        deadline = time.monotonic() + timeout
        for served in self._served.values():
            while True:
                if served.process.poll() is not None:
                    raise RuntimeError(f"S3 server for grant {served.grant.grant_id} exited "
                                       f"({served.process.returncode}); see {self._log_path(served.grant)}")
                try:
                    with socket.create_connection((_connect_host(self.host), served.port), timeout=0.5):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"S3 server for grant {served.grant.grant_id} not up") from None
                    time.sleep(0.05)

    # --- internals --------------------------------------------------------

    def _start(self, grant: Grant) -> Served:
        bucket_dir = self.bucket_dir(grant.bucket)
        bucket_dir.mkdir(parents=True, exist_ok=True)
        port = self._port_for(grant.grant_id)
        args = [str(self.rclone), "serve", "s3", ":combine:", "--addr", f"{self.host}:{port}",
                "--config", os.devnull, "--dir-cache-time", DIR_CACHE_TIME, "--log-level", "NOTICE"]
        if self.certificate:
            args += ["--cert", str(self.certificate.cert_path), "--key", str(self.certificate.key_path)]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.state_dir),
            "RCLONE_AUTH_KEY": csv_quote(f"{grant.access_key},{grant.secret_key}"),
            "RCLONE_COMBINE_UPSTREAMS": csv_quote(f"{grant.bucket}={bucket_dir}"),
        }
        log_file = open(self._log_path(grant), "ab")
        process = subprocess.Popen(args, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        log_file.close()
        served = Served(grant=grant, port=port, process=process, started_at=time.monotonic())
        self._served[grant.grant_id] = served
        log.info("serving grant %s (bucket %s) on port %s", grant.grant_id, grant.bucket, port)
        return served

    def _stop(self, served: Served) -> None:
        if served.process.poll() is None:
            os.killpg(served.process.pid, signal.SIGTERM)
            try:
                served.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(served.process.pid, signal.SIGKILL)
                served.process.wait()

    def _port_for(self, grant_id: str) -> int:
        port = self._ports.get(grant_id)
        if port is not None and port in self.ports:
            return port
        taken = set(self._ports.values())
        for candidate in self.ports:
            if candidate not in taken and _port_free(self.host, candidate):
                self._ports[grant_id] = candidate
                return candidate
        raise PortRangeExhausted(f"no free port left in {self.ports.start}-{self.ports.stop - 1} "
                                 f"for another grant; widen DTN_RECEIVER_PORTS")

    def _log_path(self, grant: Grant) -> Path:
        directory = self.state_dir / "logs"
        directory.mkdir(parents=True, exist_ok=True)
        return directory / f"s3-{grant.grant_id}.log"

    def _load_ports(self) -> dict[str, int]:
        try:
            return {key: int(value) for key, value in read_state(self._ports_file).items()}
        except ValueError:
            return {}

    def _save_ports(self) -> None:
        write_state(self._ports_file, self._ports)


def read_state(path: Path) -> dict:
    """A backend's memory in the state dir; empty when there is none (or it is unreadable)."""
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_state(path: Path, data: dict) -> None:
    """Atomically: a crash leaves the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    tmp.replace(path)


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _connect_host(bind: str) -> str:
    # A server bound to every address is reached on loopback from here.
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(bind, bind)


class ReceiverSite:
    """A receiver site as the controller sees it: after each heartbeat, fetch
    the active grants (cheap: 304 while unchanged) and serve exactly those; in
    each heartbeat, report the certificate, where each grant is served, and the
    free space. Serving is the backend's: the agent's own `rclone serve s3` per
    grant (GrantServers), or users and policies in an external MinIO
    (agent/minio_grants.py)."""

    def __init__(self, rclone: Path, config, state_dir: Path):
        from agent.config import MinioReceiverConfig

        self.config = config
        if isinstance(config, MinioReceiverConfig):
            from agent.minio_grants import MinioGrants

            self.servers = MinioGrants(config, state_dir / "receiver")
        else:
            certificate = ensure_certificate(state_dir / "tls", [config.host]) if config.tls else None
            self.servers = GrantServers(rclone, config.receive_dir, state_dir / "receiver", config.bind,
                                        config.ports, certificate, advertise=config.host)
        self.certificate = self.servers.certificate
        # The side channel's `verify_received`, over wherever this backend keeps what landed.
        self.verify_received = self.servers.verify_task()
        self._etag: str | None = None
        self._grants: list[Grant] = []
        self.health: dict[str, str] = {}
        # Refreshed after heartbeats (the main loop) and when the portal says the grants changed (the
        # side channel's thread): one at a time, and never described half-synced.
        self._lock = threading.RLock()

    def refresh(self, portal) -> bool:
        """Sync the servers with the portal's grants; True if what the heartbeat
        reports changed (so the controller reports it at once)."""
        with self._lock:
            return self._refresh(portal)

    def _refresh(self, portal) -> bool:
        before = self._reported_endpoints()
        grants, etag = portal.grants(self._etag)
        if grants is not None:
            self._grants = [Grant(str(g["grant_id"]), g["bucket"], g["access_key"], g["secret_key"]) for g in grants]
            self._etag = etag
        # Every time, not only on change: a server that died is restarted here.
        self.servers.sync(self._grants)
        self.health = self.check()
        return self._reported_endpoints() != before

    def check(self) -> dict[str, str]:
        """Each grant's S3 server as a sender meets it: over TLS with this site's
        certificate, with the grant's own key, its bucket there. 'ok' or why not."""
        by_id = {grant.grant_id: grant for grant in self._grants}
        results = {}
        for endpoint in self.servers.endpoints():
            grant = by_id.get(endpoint["grant_id"])
            if grant is None or not endpoint["running"]:
                results[endpoint["grant_id"]] = endpoint.get("problem") or "not running"
                continue
            try:
                host, port = self.servers.address(endpoint)
                found = s3_client(host, port, grant.access_key, grant.secret_key,
                                  self.certificate).bucket_exists(grant.bucket)
                results[grant.grant_id] = "ok" if found else f"bucket {grant.bucket} missing"
            except Exception as exc:  # any S3 or connection failure is this server's health
                results[grant.grant_id] = f"unhealthy: {type(exc).__name__}: {str(exc)[:200]}"
        return results

    def _reported_endpoints(self) -> list[tuple[str, str]]:
        return sorted((e["grant_id"], e["endpoint"]) for e in self.servers.endpoints())

    def describe(self) -> dict:
        with self._lock:
            return self._describe()

    def _describe(self) -> dict:
        body = {
            "endpoint": self.servers.site_endpoint(),
            "grants": [{key: e[key] for key in self.servers.reported}
                       for e in self.servers.endpoints() if e["running"]],
        }
        if self.certificate:
            body["certificate_pem"] = self.certificate.pem
            body["certificate_sha256"] = self.certificate.sha256
        body["health"] = {"grants": self.health}
        free = self.servers.free_bytes()
        if free is not None:
            body["disk_free_bytes"] = free
        return body

    def secrets(self) -> list[str]:
        """The grants' secret keys, for the log redactor."""
        return [grant.secret_key for grant in self._grants]

    def stop(self) -> None:
        self.servers.stop_all()


def tls_pool(certificate: Certificate | None, read_timeout: float = 5):
    """An HTTP pool for this agent's own S3 and admin calls: no retries (a failure is the answer),
    trusting only the site's certificate."""
    import urllib3

    pool = urllib3.PoolManager(ca_certs=str(certificate.cert_path) if certificate else None,
                               retries=urllib3.Retry(total=0), timeout=urllib3.Timeout(connect=2, read=read_timeout))
    # The certificate names DTN_RECEIVER_HOST; from here the server is reached on the bind address,
    # so the name check is relaxed while the chain is still verified against the pinned certificate.
    # (A MinIO certificate was checked against its URL's host when the configuration was read.)
    if certificate:
        pool.connection_pool_kw["assert_hostname"] = False
    return pool


def s3_client(host: str, port: int, access_key: str, secret_key: str, certificate: Certificate | None,
              region: str | None = None):
    """A minio SDK client for one S3 server, with one key, trusting only this site's certificate.
    Without `region` the SDK asks each bucket's location first."""
    from minio import Minio

    return Minio(f"{_host_for_url(host)}:{port}", access_key=access_key, secret_key=secret_key,
                 secure=certificate is not None, region=region, http_client=tls_pool(certificate))
