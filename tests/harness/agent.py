"""The agent as an operator runs it (`python -m agent`): its token, and any other
secret, in the state dir's 0600 secrets file, everything else in its environment;
driving the `rclone rcd` it starts, or a `Sidecar`'s (the docker compose layout)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
from pathlib import Path

import requests

from portal.box.processes import AGENT_ARGV, stop_group, write_secrets_file
from tests.harness.files import wait_for
from tests.harness.places import LOCAL
from tests.harness.s3 import RCLONE


class Sidecar:
    """`rclone rcd` as docker compose runs it beside the agent: its own process, credentials in its
    environment."""

    def __init__(self, log_dir: Path, place=LOCAL):
        self.place = place
        self.port = place.free_port()
        self.user, self.password = "agent", secrets.token_urlsafe(24)
        self.url = f"http://{place.address}:{self.port}"
        self.log_path = Path(log_dir) / f"rcd-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> "Sidecar":
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.log_path.parent),
               "RCLONE_RC_USER": self.user, "RCLONE_RC_PASS": self.password}
        self.process = self.place.popen([str(RCLONE), "rcd", "--rc-addr", f"{self.place.listen}:{self.port}",
                                         "--config", os.devnull], env=env, log=self.log_path)

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
        stop_group(self.process)


class Agent:
    def __init__(self, portal_url: str, token: str | None, send_dir: Path | None, state_dir: Path, log_dir: Path,
                 *, place=LOCAL, sidecar: Sidecar | None = None, secrets: dict | None = None, **env: str):
        """`token` None: no secrets file (the test gives DTN_AGENT_TOKEN in `env`, or none); `send_dir`
        None: a site that only receives."""
        self.place = place
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        secrets = dict(secrets or {})
        if sidecar is not None:
            secrets["DTN_RCLONE_RC_PASS"] = sidecar.password
            env = {"DTN_RCLONE_RC_URL": sidecar.url, "DTN_RCLONE_RC_USER": sidecar.user, **env}
        if token is not None:
            write_secrets_file(self.state_dir, token, **secrets)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "DTN_PORTAL_URL": portal_url,
            "DTN_STATE_DIR": str(self.state_dir),
            "DTN_PROGRESS_SECONDS": "0.5",
            **place.agent_env,
            **env,
        }
        if send_dir is not None:
            self.env["DTN_SEND_DIR"] = str(send_dir)
        self.log_path = Path(log_dir) / f"agent-{self.state_dir.name}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> "Agent":
        self.process = self.place.popen(AGENT_ARGV, env=self.env, log=self.log_path)
        return self

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """The agent's command line, once, to its end (e.g. `--check-config`), its output captured."""
        return self.place.run([*AGENT_ARGV, *args], env=self.env, timeout=timeout)

    @property
    def pid(self) -> int:
        return self.process.pid

    def children(self) -> list[int]:
        return [pid for pid, parent, _ in _processes() if parent == self.pid]

    def descendants(self) -> list[tuple[int, str]]:
        """(pid, command line) of every process below the agent."""
        table = _processes()
        found, frontier = [], {self.pid}
        while frontier:
            below = [(pid, cmd) for pid, parent, cmd in table if parent in frontier]
            found += below
            frontier = {pid for pid, _ in below}
        return found

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        stop_group(self.process, timeout=20)


def _processes() -> list[tuple[int, int, str]]:
    """(pid, parent pid, command line) of every process of this host."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found.append((int(entry.name), int(fields[1]), cmd))
    return found
