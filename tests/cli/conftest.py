"""A live portal for the CLI's tests, a person on it, and `dtn` run as a person runs it:
the installed entry point, as a subprocess, with its own config directory."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import Agent, Person, PortalServer, S3Server, Scratch, new_keys

DTN = Path(sys.executable).parent / "dtn"
PASSWORD = "correct horse battery staple 42"  # tests.harness.Person's


class Result:
    def __init__(self, completed: subprocess.CompletedProcess):
        self.code, self.out, self.err = completed.returncode, completed.stdout, completed.stderr

    def json(self):
        return json.loads(self.out)

    def __repr__(self):
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


class CLI:
    """`dtn` with a config directory of its own and a clean environment."""

    def __init__(self, config_dir: Path, **env: str):
        self.config_dir = Path(config_dir)
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.config_dir),
                    "LANG": "C.UTF-8", "DTN_CONFIG_DIR": str(self.config_dir), **env}

    def __call__(self, *args: str, timeout: float = 60, **env: str) -> Result:
        return Result(subprocess.run([str(DTN), *args], env={**self.env, **env}, capture_output=True, text=True,
                                     stdin=subprocess.DEVNULL, timeout=timeout))

    def on_a_terminal(self, *args: str, timeout: float = 30) -> tuple[int, str]:
        """`dtn` with its standard output on a pseudo-terminal: its exit status and what it drew."""
        main, child = pty.openpty()
        try:
            process = subprocess.Popen([str(DTN), *args], env={**self.env, "COLUMNS": "120"}, stdout=child,
                                       stderr=child, stdin=subprocess.DEVNULL)
            os.close(child)
            child = None
            drawn = b""
            while True:
                ready, _, _ = select.select([main], [], [], timeout)
                if not ready:
                    process.kill()
                    process.wait()
                    raise AssertionError(f"dtn {' '.join(args)} drew nothing for {timeout} s")
                try:
                    chunk = os.read(main, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                drawn += chunk
            return process.wait(timeout), drawn.decode(errors="replace")
        finally:
            if child is not None:
                os.close(child)
            os.close(main)


@pytest.fixture(scope="session")
def portal():
    with PortalServer(DTN_HEARTBEAT_SECONDS="2") as server:
        yield server


class Site:
    """Carol's sender container with a send folder, a plain-HTTP S3 server to send to,
    and her agent, started on demand; all stopped at the end."""

    def __init__(self, portal, scratch: Scratch, who: str = "carol"):
        self.portal, self.scratch, self.who = portal, scratch, who
        self.agents: list[Agent] = []
        self._sender: Agent | None = None
        self.s3: S3Server | None = None

    def set_up(self) -> "Site":
        self.person = Person(self.portal.url, f"{self.who}-cli")
        self.send_dir, self.recv_dir, self.logs = self.scratch / "send", self.scratch / "recv", self.scratch / "logs"
        for path in (self.send_dir, self.recv_dir, self.logs):
            path.mkdir()
        self.container = self.person.register(f"{self.who}-sender")
        self.idle = self.person.register(f"{self.who}-idle")  # no agent ever runs for this one
        access, secret = new_keys()
        self.bucket = "landing"
        self.s3 = S3Server(self.recv_dir, access, secret, log_dir=self.logs)
        self.s3.make_bucket(self.bucket)
        self.s3.start()
        self.cli = CLI(self.scratch / "config")
        login = self.cli("login", "--portal", self.portal.url, "--username", self.person.username,
                         DTN_PASSWORD=PASSWORD)
        assert login.code == 0, login
        return self

    def agent(self, container: dict | None = None) -> Agent:
        container = container or self.container
        process = Agent(self.portal.url, container["agent_token"], self.send_dir,
                        self.scratch / f"state-{len(self.agents)}", self.logs).start()
        self.agents.append(process)
        return process

    def sender(self) -> Agent:
        """Carol's sender agent, started once."""
        if self._sender is None:
            self._sender = self.agent()
        return self._sender

    def s3_args(self) -> list[str]:
        return ["--s3-host", "127.0.0.1", "--s3-port", str(self.s3.port), "--s3-bucket", self.bucket,
                "--s3-access-key", self.s3.access_key, "--s3-no-tls"]

    def s3_env(self) -> dict:
        return {"DTN_S3_SECRET_KEY": self.s3.secret_key}

    def close(self) -> None:
        for agent in self.agents:
            agent.stop()
        if self.s3 is not None:
            self.s3.stop()
        for agent in self.agents:
            text = agent.log()
            if text:
                print(f"--- {agent.log_path.name} (last lines) ---")
                print("\n".join(text.splitlines()[-40:]))


@pytest.fixture(scope="module")
def site(portal):
    scratch = Scratch("dtn-cli-")
    made = Site(portal, scratch)
    try:
        yield made.set_up()
    finally:
        made.close()
        scratch.remove()
