"""The portal as a site runs it (portal/box/processes.py): migrated, then served by
gunicorn with the box's config, on a free port of its place, its database and logs in
its state dir."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from portal.box.processes import PORTAL_ARGV, REPO, migrate, portal_answers, stop_group
from tests.harness.files import wait_for
from tests.harness.places import LOCAL


class PortalServer:
    def __init__(self, state_dir: Path | None = None, *, place=LOCAL, **settings: str):
        """`settings`: the portal's environment beyond the tests' defaults. Without `state_dir`, a temporary
        one, removed at close(). `url` is where this test process reaches the portal, `agent_url` where
        agents in other places do."""
        self.place = place
        self._own_dir = state_dir is None
        self.state_dir = Path(state_dir or tempfile.mkdtemp(prefix="dtn-portal-"))
        self.port = place.free_port()
        self.agent_url = f"http://{place.address}:{self.port}"
        host, port = place.expose(place.address, self.port)
        self.url = f"http://{host}:{port}"
        on_this_host = place.address == "127.0.0.1"
        # A database server of this host is not reachable from inside the bed.
        database = os.environ.get("DTN_TEST_SERVER_DATABASE_URL") if on_this_host else None
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "DTN_STATE_DIR": str(self.state_dir),
            "DATABASE_URL": database or f"sqlite:///{self.state_dir / 'portal.sqlite3'}",
            "DTN_BIND": f"{place.listen}:{self.port}",
            **place.portal_env,
            **settings,
        }
        self.log_path = self.state_dir / "server.log"
        self.process: subprocess.Popen | None = None

    def manage(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        """A management command on the server's database and settings (run on this host)."""
        return subprocess.run([sys.executable, str(REPO / "manage.py"), *args], env=self.env, cwd=REPO,
                              check=True, capture_output=True, text=True, **kwargs)

    def start(self, timeout: float = 40) -> "PortalServer":
        try:
            migrate(self.env)
            self.process = self.place.popen(PORTAL_ARGV, env=self.env, log=self.log_path)

            def healthy():
                if self.process.poll() is not None:
                    raise RuntimeError(f"portal server exited:\n{self.log()[-3000:]}")
                return portal_answers(self.url)

            try:
                wait_for(healthy, timeout, f"the portal to answer at {self.url}", 0.2)
            except AssertionError as exc:
                raise RuntimeError(f"{exc}:\n{self.log()[-3000:]}") from None
            return self
        except BaseException:
            # A server that failed to come up is still a process: never leave it behind.
            self.stop()
            raise

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """The server stops; start() brings it back on the same port and database."""
        stop_group(self.process, 15)

    def close(self) -> None:
        self.stop()
        self.place.close()
        if self._own_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
