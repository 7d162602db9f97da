"""Start the box's programs as a site would run them, and stop them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# What the box and its processes write (the SQLite database and its journal, logs, mails, the agents' state)
# holds tokens, keys and people's data: readable by this user only, whatever the caller's umask.
PRIVATE_UMASK = 0o077
# How a site runs the portal (gunicorn with the box's config) and an agent; the tests' harness
# (tests/harness) starts them the same way.
PORTAL_ARGV = [str(BIN / "gunicorn"), "-c", str(REPO / "portal" / "gunicorn.conf.py")]
AGENT_ARGV = [sys.executable, "-m", "agent"]


class Processes:
    """Every process the box started, stopped together (also on Ctrl-C or an error)."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.running: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], env: dict) -> subprocess.Popen:
        log = os.fdopen(os.open(self.log_dir / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
        process = subprocess.Popen(argv, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True, umask=PRIVATE_UMASK)
        log.close()
        self.running.append((name, process))
        return process

    def check_alive(self) -> None:
        for name, process in self.running:
            if process.poll() is not None:
                raise BoxError(f"{name} exited with status {process.returncode}; see {self.log_dir / name}.log")

    def stop_all(self) -> None:
        for _, process in reversed(self.running):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for _, process in reversed(self.running):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.running.clear()


def stop_group(process: subprocess.Popen | None, timeout: float = 15) -> None:
    """SIGTERM to the process's whole group (started with start_new_session), SIGKILL if it lingers."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class BoxError(Exception):
    """Something the person running the box must know; the message says what."""


def base_env() -> dict:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    return {name: os.environ[name] for name in keep if name in os.environ}


def portal_env(state_dir: Path, port: int, **extra: str) -> dict:
    # The box is one machine: its receiver's address is on loopback, which a portal refuses by default.
    return {**base_env(), "DJANGO_SETTINGS_MODULE": "portal.settings", "DTN_STATE_DIR": str(state_dir),
            "DTN_BIND": f"127.0.0.1:{port}", "DTN_SITE_URL": f"http://127.0.0.1:{port}",
            "DTN_ALLOW_LOCAL_ENDPOINTS": "true", **extra}


def migrate(env: dict) -> None:
    result = subprocess.run([sys.executable, str(REPO / "manage.py"), "migrate", "--noinput"], env=env, cwd=REPO,
                            capture_output=True, text=True, umask=PRIVATE_UMASK)
    if result.returncode != 0:
        raise BoxError(f"the portal's database could not be set up:\n{result.stdout}{result.stderr}")


def portal_answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def start_portal(processes: Processes, env: dict, url: str, timeout: float = 60) -> None:
    migrate(env)
    processes.start("portal", PORTAL_ARGV, env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        processes.check_alive()
        if portal_answers(url):
            return
        time.sleep(0.2)
    raise BoxError(f"the portal did not answer at {url} within {timeout:.0f} s; see {processes.log_dir}/portal.log")


def write_secrets_file(state_dir: Path, token: str, **more: str) -> None:
    """The agent's token (and any other secret of its) goes in its one 0600 secrets file, not on a
    command line."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(state_dir / "secrets.env", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        for name, value in {"DTN_AGENT_TOKEN": token, **more}.items():
            handle.write(f"{name}={value}\n")


def start_agent(processes: Processes, name: str, portal_url: str, token: str, state_dir: Path, **env: str) -> None:
    write_secrets_file(state_dir, token)
    processes.start(name, AGENT_ARGV,
                    {**base_env(), "DTN_PORTAL_URL": portal_url, "DTN_STATE_DIR": str(state_dir),
                     "DTN_ALLOW_LOCAL_ENDPOINTS": "true", **env})
