"""What a receiver's backend is, and what both backends share.

A backend serves the active grants at one address: the agent's own `rclone serve s3`
(agent/receiver/rclone.py) or a MinIO the site runs (agent/receiver/minio.py). ReceiverSite
(agent/receiver/site.py) drives either through this surface, so neither imports the other."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from agent.tls import Certificate


@dataclass(frozen=True)
class Grant:
    grant_id: str
    bucket: str
    access_key: str
    secret_key: str = field(repr=False)


class Backend(Protocol):
    certificate: Certificate | None

    def sync(self, grants: list[Grant]) -> None:
        """Serve exactly these grants (a step that fails is tried again on the next sync)."""

    def endpoint(self) -> str:
        """The one address every grant is served at: scheme://host:port."""

    def health(self, grants: list[Grant]) -> dict[str, str]:
        """Each grant, as a sender would meet it: 'ok' or why not."""

    def free_bytes(self) -> int | None: ...

    def verify_task(self) -> Callable[[dict], dict]:
        """The side channel's `verify_received` over wherever this backend keeps what landed."""

    def wait_ready(self, timeout: float = 10.0) -> None: ...

    def stop_all(self) -> None: ...


def host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def connect_host(bind: str) -> str:
    # A server bound to every address is reached on loopback from here.
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(bind, bind)


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

    return Minio(f"{host_for_url(host)}:{port}", access_key=access_key, secret_key=secret_key,
                 secure=certificate is not None, region=region, http_client=tls_pool(certificate))
