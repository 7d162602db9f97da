"""A real portal server for tests: migrated, then served by
gunicorn with the config the box uses, on a free port of 127.0.0.1."""

from __future__ import annotations

import os
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
BIN = Path(sys.executable).parent


class PortalServer:
    def __init__(self, state_dir: Path | None = None, **settings: str):
        self._own_dir = state_dir is None
        self.state_dir = Path(state_dir or tempfile.mkdtemp(prefix="dtn-portal-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "DTN_STATE_DIR": str(self.state_dir),
            "DATABASE_URL": os.environ.get("DTN_TEST_SERVER_DATABASE_URL")
            or f"sqlite:///{self.state_dir / 'portal.sqlite3'}",
            "DTN_BIND": f"127.0.0.1:{self.port}",
            # Every test receiver is on this host, which a portal refuses by default.
            "DTN_ALLOW_LOCAL_ENDPOINTS": "true",
            **settings,
        }
        self.log_path = self.state_dir / "server.log"
        self.process: subprocess.Popen | None = None

    def manage(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(REPO / "manage.py"), *args], env=self.env, cwd=REPO,
                              check=True, capture_output=True, text=True, **kwargs)

    def start(self, timeout: float = 30) -> "PortalServer":
        try:
            return self._start(timeout)
        except BaseException:
            # A server that failed to come up is still a process: never leave it behind.
            self.stop()
            raise

    def _start(self, timeout: float) -> "PortalServer":
        self.manage("migrate", "--noinput")
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", str(REPO / "portal" / "gunicorn.conf.py")],
            env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"portal server exited:\n{self.log()}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"portal server did not answer within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self):
        stop_group(self.process)
        if self._own_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
