"""The receiver a command sends to: checked as the portal describes it, given to rclone
as an inline remote (its keys only ever in a call's JSON body), its certificate pinned."""

from __future__ import annotations

import hashlib
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from agent import names
from agent.sender.errors import BadDestination, TransferFailed
from agent.statefile import write_atomic
from dtn_protocol.endpoints import Destination as DestinationKind
from dtn_protocol.endpoints import EndpointRefused, Rule, check_receiver, resolve
from dtn_protocol.failures import FailureReason


@dataclass(frozen=True)
class Destination:
    endpoint: str
    bucket: str
    prefix: str
    access_key: str
    secret_key: str = field(repr=False)
    tls: bool
    certificate_pem: str | None
    certificate_sha256: str | None
    free_bytes: int | None = None
    # A receiver through a grant (the endpoint rule applies), or an S3 endpoint its sender's owner typed.
    kind: str = DestinationKind.RECEIVER
    # How the receiving filesystem compares names, as its agent found by trying (agent/names.py): a
    # hand-entered S3 endpoint, or a receiver that has not said, is taken as exact (S3 keys are).
    case_insensitive: bool = False
    normalization_insensitive: bool = False
    name_max: int = names.NAME_MAX
    # How the receiver's S3 server names keys: "rclone" for rclone's serve s3, else kept as sent.
    keys: str | None = None

    @property
    def host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.endpoint)
        return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)

    def remote(self, path: str, ca_file: Path | None, params: dict | None = None) -> dict:
        """rclone's inline remote for `bucket/prefix/path`, as a JSON object."""
        root = "/".join(part for part in (self.bucket, self.prefix, path) if part)
        fs = {
            **(params or {}),
            "type": "s3",
            "provider": "Other",
            "endpoint": self.endpoint,
            "access_key_id": self.access_key,
            "secret_access_key": self.secret_key,
            # Without it a file over 256 MiB fails with CreateBucket 409 on `rclone serve s3` (facts.md);
            # the receiver makes the bucket.
            "no_check_bucket": "true",
            # Names as they are, byte for byte (agent/names.py).
            "encoding": names.s3_encoding(self.keys),
            # A trailing slash says "directory": rclone then skips probing whether the root is a file.
            "_root": root + "/",
        }
        if ca_file is not None:
            # override.* applies a global option to this remote only: rclone trusts exactly the pinned certificate.
            fs["override.ca_cert"] = str(ca_file)
        return fs

    @property
    def key_room(self) -> int | None:
        """The bytes an S3 key has for a file's path after the prefix; None toward rclone's serve s3, which
        stores a key as folders (only each part's length counts: name_max)."""
        if self.keys == names.RCLONE_KEYS:
            return None
        prefix = len(self.prefix.encode("utf-8"))
        return names.KEY_MAX - (prefix + 1 if prefix else 0)

    def where(self) -> str:
        return f"{self.endpoint}/{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")


def _fingerprint(value: str) -> str:
    return value.replace(":", "").strip().lower()


def parse_destination(dest) -> Destination:
    """The receiver as the portal sends it (a command's or a network check's), checked."""
    if not isinstance(dest, dict):
        raise BadDestination("it names no receiver ('destination' is missing: no endpoint, bucket or keys)")
    for key in ("endpoint", "bucket", "access_key", "secret_key"):
        if not isinstance(dest.get(key), str) or not dest[key]:
            raise BadDestination(f"destination.{key} is missing")
    endpoint = dest["endpoint"].rstrip("/")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadDestination(f"destination.endpoint is not an http(s) URL: {endpoint!r}")
    tls = bool(dest.get("tls", parts.scheme == "https"))
    if tls != (parts.scheme == "https"):
        raise BadDestination(f"destination.tls is {tls} but the endpoint is {parts.scheme}://")
    if "/" in dest["bucket"]:
        raise BadDestination("destination.bucket must not contain '/'")
    prefix = (dest.get("prefix") or "").strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise BadDestination(f"destination.prefix must not have empty, '.' or '..' parts: {prefix!r}")
    fingerprint = dest.get("certificate_sha256") or None
    free = dest.get("free_bytes")
    # A portal too old to say is taken as a receiver's: the stricter reading.
    kind = dest.get("kind") or DestinationKind.RECEIVER
    if kind not in tuple(DestinationKind):
        raise BadDestination(f"destination.kind must be one of {', '.join(DestinationKind)}, not {kind!r}")
    said = dest.get("names") if isinstance(dest.get("names"), dict) else {}
    name_max = said.get("name_max")
    name_max = name_max if isinstance(name_max, int) and not isinstance(name_max, bool) and name_max > 0 else None
    return Destination(endpoint=endpoint, bucket=dest["bucket"], prefix=prefix, access_key=dest["access_key"],
                       secret_key=dest["secret_key"], tls=tls, certificate_pem=dest.get("certificate_pem") or None,
                       certificate_sha256=_fingerprint(fingerprint) if fingerprint else None,
                       free_bytes=free if isinstance(free, int) and not isinstance(free, bool) and free >= 0 else None,
                       kind=DestinationKind(kind), case_insensitive=said.get("case_insensitive") is True,
                       normalization_insensitive=said.get("normalization_insensitive") is True,
                       name_max=min(name_max or names.NAME_MAX, names.NAME_MAX),
                       keys=said.get("keys") if said.get("keys") == names.RCLONE_KEYS else None)


def check_destination(d: Destination, rule: Rule) -> None:
    """A receiver's address checked again here, before anything connects to it: the portal's rule
    (dtn_protocol.endpoints) with this agent's own settings, the name resolved as it will be
    connected to. A forged or stale record then sends nothing anywhere."""
    if d.kind != DestinationKind.RECEIVER:
        return
    host, _ = d.host_port
    try:
        check_receiver(d.endpoint, rule, pinned=bool(d.certificate_pem), addresses=resolve(host))
    except EndpointRefused as exc:
        raise TransferFailed(FailureReason.DESTINATION_REFUSED, str(exc)) from None


def pin_certificate(state_dir: Path, d: Destination) -> Path | None:
    """The receiver's certificate as a file for rclone's ca_cert (public data, kept by
    fingerprint), after checking it against the fingerprint the portal pinned."""
    if not d.tls or not d.certificate_pem:
        return None
    try:
        actual = pem_sha256(d.certificate_pem)
    except ValueError:
        raise TransferFailed(FailureReason.CERTIFICATE_MISMATCH,
                             "the receiver's certificate in the command is not a PEM certificate") from None
    if d.certificate_sha256 and actual != d.certificate_sha256:
        raise TransferFailed(FailureReason.CERTIFICATE_MISMATCH,
                             f"the certificate in the command has SHA-256 {actual}, not the pinned"
                             f" {d.certificate_sha256}")
    path = Path(state_dir) / "certs" / f"{actual}.pem"
    if not path.exists():
        write_atomic(path, d.certificate_pem.encode(), 0o644)
    return path


def peer_certificate_sha256(host: str, port: int, timeout: float = 10.0) -> str:
    """The SHA-256 of the certificate the server presents (no trust decision here: we compare it)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=timeout) as sock:
        with context.wrap_socket(sock, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    return hashlib.sha256(der).hexdigest()


def pem_sha256(pem: str) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def explain(reason: FailureReason, d: Destination, detail: str) -> str:
    """A failure at this receiver in words: what the reason means here, then the detail."""
    lead = {
        FailureReason.AUTH_FAILED: f"the receiver at {d.endpoint} refused the keys for bucket {d.bucket}",
        FailureReason.CERTIFICATE_MISMATCH: f"the TLS certificate of {d.endpoint} is not the pinned one",
        FailureReason.RECEIVER_FULL: f"the receiver at {d.endpoint} has no space left",
        FailureReason.RECEIVER_UNREACHABLE: f"the receiver at {d.endpoint} did not answer",
        FailureReason.CHECKSUM_MISMATCH: "rclone found a checksum difference",
    }.get(reason, "rclone failed")
    if "NoSuchBucket" in detail:
        lead = f"the receiver has no bucket {d.bucket!r}"
    return f"{lead}: {detail}"
