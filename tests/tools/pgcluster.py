"""A throwaway PostgreSQL cluster in a temp dir, for the test command.

PostgreSQL refuses to run as root, and CI runs as root: then the cluster runs
as the `postgres` system user, in a directory it owns. The server binaries are
installed from Debian's packages when missing."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.tools.net import free_port


def _bin_dir() -> Path:
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not candidates and os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not candidates:
        raise RuntimeError("PostgreSQL server binaries not found; install the 'postgresql' package")
    return Path(candidates[-1]).parent


class Cluster:
    def __init__(self):
        self.bin = _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="dtn-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_root = os.geteuid() == 0

    def _run(self, *args):
        command = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=self.root)

    def start(self, **settings: str) -> str:
        """Start the cluster; `settings` are server settings (-c name=value) over the defaults here."""
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "dtn", "-A", "trust", "-E", "UTF8", "--no-sync")
        settings = {"fsync": "off", "max_connections": "300", **settings}
        options = f"-p {self.port} -k {self.root} -h 127.0.0.1 " + " ".join(
            f"-c {name}={value}" for name, value in settings.items())
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")
        return f"postgres://dtn@127.0.0.1:{self.port}/dtn"

    def stop(self):
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
