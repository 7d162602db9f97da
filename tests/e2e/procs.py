"""Real processes for end-to-end tests, each one stopped (and its files removed)
by whoever started it, whatever the test did:

- `S3Server`: `rclone serve s3` over a folder, keys in its environment.
- `AgentProcess`: `python -m agent` with its token in a 0600 secrets file.
- `Person`: a signed-up user speaking the portal's API (the send flow, stop,
  restart, the transfer record).

The portal server itself is tests/tools/portal_server.py.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from portal.box.processes import stop_group

from tests.tools.net import free_port

REPO = Path(__file__).resolve().parents[2]
RCLONE = Path(sys.executable).parent / "rclone"
MiB = 1024 * 1024


def sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def write_random(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        left = size
        while left:
            chunk = min(left, 8 * MiB)
            handle.write(os.urandom(chunk))
            left -= chunk
    return path


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    """Poll until `predicate()` is truthy; its value is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


# Every process group a test starts is stopped the way the box stops its own.
_stop = stop_group

def csv_quote(value: str) -> str:
    # rclone reads list-valued flags from the environment as CSV.
    return '"' + value.replace('"', '""') + '"'


def new_keys() -> tuple[str, str]:
    return "AK" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)


class S3Server:
    """`rclone serve s3` over `root`: objects land as `root/<bucket>/<key>`."""

    def __init__(self, root: Path, access_key: str, secret_key: str, *, cert: Path | None = None,
                 key: Path | None = None, log_dir: Path):
        self.root, self.access_key, self.secret_key = Path(root), access_key, secret_key
        self.cert, self.key = cert, key
        self.port = free_port()
        self.log_path = Path(log_dir) / f"s3-{self.port}.log"
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.cert else 'http'}://127.0.0.1:{self.port}"

    def make_bucket(self, name: str) -> Path:
        # Before start: serve s3 caches the directory tree (facts.md).
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def start(self) -> "S3Server":
        args = [str(RCLONE), "serve", "s3", str(self.root), "--addr", f"127.0.0.1:{self.port}",
                "--config", os.devnull, "--dir-cache-time", "1s", "--log-level", "NOTICE"]
        if self.cert:
            args += ["--cert", str(self.cert), "--key", str(self.key)]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root.parent),
               "RCLONE_AUTH_KEY": csv_quote(f"{self.access_key},{self.secret_key}")}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        import socket

        def listening():
            if self.process.poll() is not None:
                raise RuntimeError(f"serve s3 exited: {self.log_path.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False

        wait_for(listening, 10, "serve s3 to listen", 0.05)
        return self

    def stop(self) -> None:
        _stop(self.process)


class RcdSidecar:
    """`rclone rcd` as docker compose runs it beside the agent: its own process,
    credentials in its environment."""

    def __init__(self, log_dir: Path):
        self.port = free_port()
        self.user, self.password = "agent", secrets.token_urlsafe(24)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_dir) / f"rcd-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> "RcdSidecar":
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.log_path.parent),
               "RCLONE_RC_USER": self.user, "RCLONE_RC_PASS": self.password}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(RCLONE), "rcd", "--rc-addr", f"127.0.0.1:{self.port}", "--config", os.devnull],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

        def answers():
            try:
                return requests.post(f"{self.url}/core/version", auth=(self.user, self.password),
                                     timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_for(answers, 10, "rclone rcd to answer", 0.05)
        return self

    def call(self, path: str, **params) -> dict:
        return requests.post(f"{self.url}/{path}", json=params, auth=(self.user, self.password), timeout=10).json()

    def stop(self) -> None:
        _stop(self.process)


class AgentProcess:
    """The agent as an operator runs it: the token in the state dir's 0600
    secrets file, everything else in its environment."""

    def __init__(self, portal_url: str, token: str, send_dir: Path | None, state_dir: Path, log_dir: Path,
                 secrets: dict | None = None, **env: str):
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        secrets_file = self.state_dir / "secrets.env"
        fd = os.open(secrets_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            for name, value in {"DTN_AGENT_TOKEN": token, **(secrets or {})}.items():
                handle.write(f"{name}={value}\n")
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "DTN_PORTAL_URL": portal_url,
            "DTN_STATE_DIR": str(self.state_dir),
            "DTN_PROGRESS_SECONDS": "0.5",
            "DTN_RECEIVER_ATTEMPTS": "3",
            "DTN_RECEIVER_RETRY_SECONDS": "0.5",
            # Every test receiver is on this host, which a sender refuses to reach by default.
            "DTN_ALLOW_LOCAL_ENDPOINTS": "true",
            **env,
        }
        if send_dir is not None:  # a receiver-only site has none
            self.env["DTN_SEND_DIR"] = str(send_dir)
        self.log_dir = Path(log_dir)
        self.log_path = self.log_dir / f"agent-{self.state_dir.name}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> "AgentProcess":
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "agent"], env=self.env, cwd=REPO, stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        return self.process.pid

    def children(self) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.pid:
                found.append(int(entry.name))
        return found

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        _stop(self.process, timeout=20)


class Person:
    """A person using the portal's API with a personal token."""

    def __init__(self, portal_url: str, username: str, verify: bool | str = True):
        """`verify`: as requests takes it; a path trusts that certificate (a self-signed portal's)."""
        self.url = portal_url
        self.username = username
        # Given with each request: requests lets REQUESTS_CA_BUNDLE override a session's `verify`.
        self.verify = verify
        self.session = requests.Session()
        body = {"username": username, "email": f"{username}@example.org", "password": "correct horse battery staple 42"}
        response = self.session.post(f"{portal_url}/api/v1/signup", json=body, timeout=30, verify=verify)
        assert response.status_code == 201, response.text
        response = self.session.post(f"{portal_url}/api/v1/auth/token", json={**body, "name": "e2e"}, timeout=30,
                                     verify=verify)
        assert response.status_code == 201, response.text
        self.session.headers["Authorization"] = f"Bearer {response.json()['token']}"

    def call(self, method: str, path: str, expect: int | tuple = 200, **kwargs):
        response = self.session.request(method, f"{self.url}{path}", timeout=30, verify=self.verify, **kwargs)
        expected = (expect,) if isinstance(expect, int) else expect
        assert response.status_code in expected, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def register(self, name: str, role: str = "sender") -> dict:
        return self.call("POST", "/api/v1/containers", 201, json={"name": name, "role": role})

    def send(self, sender_id: str, sources: list[str], s3: S3Server, bucket: str, **options) -> str:
        """The send flow with an S3 endpoint entered by hand (the keys travel once, to the portal)."""
        body = {"sender": sender_id, "sources": sources, "s3_host": "127.0.0.1", "s3_port": s3.port,
                "s3_tls": bool(s3.cert), "s3_bucket": bucket, "s3_access_key": options.pop("access_key", s3.access_key),
                "s3_secret_key": options.pop("secret_key", s3.secret_key), **options}
        return self.call("POST", "/api/v1/transfers", 201, json=body)["transfer_id"]

    def transfer(self, transfer_id: str) -> dict:
        return self.call("GET", f"/api/v1/transfers/{transfer_id}")

    def files(self, transfer_id: str) -> dict[str, dict]:
        manifest = self.call("GET", f"/api/v1/transfers/{transfer_id}/manifest.json")["manifest"]
        return {row["path"]: row for row in manifest}

    def events(self, transfer_id: str) -> list[dict]:
        return self.call("GET", f"/api/v1/transfers/{transfer_id}/events?limit=500")["results"]

    def command(self, command_id: str) -> dict:
        return self.call("GET", f"/api/v1/commands/{command_id}")

    def latest_command(self, transfer_id: str) -> dict:
        return self.command(self.transfer(transfer_id)["commands"][-1]["command_id"])

    def stop(self, transfer_id: str) -> dict:
        return self.call("POST", f"/api/v1/transfers/{transfer_id}/stop")

    def restart(self, transfer_id: str) -> dict:
        return self.call("POST", f"/api/v1/transfers/{transfer_id}/restart", (200, 201))

    def wait_state(self, transfer_id: str, states, timeout: float = 60) -> dict:
        states = {states} if isinstance(states, str) else set(states)

        def reached():
            record = self.transfer(transfer_id)
            return record if record["state"] in states else None

        return wait_for(reached, timeout, f"transfer {transfer_id} to be {sorted(states)}", 0.2)


class Scratch:
    """A temporary directory removed at the end, even after a failure."""

    def __init__(self, prefix: str):
        self.path = Path(tempfile.mkdtemp(prefix=prefix))

    def __truediv__(self, other) -> Path:
        return self.path / other

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
