"""`rclone serve s3` over a folder, as a receiver's agent runs it: objects land as
`root/<bucket>/<key>`, its keys in its environment; TLS with a given certificate."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from agent import names
from portal.box.processes import stop_group
from tests.harness.files import wait_for
from tests.harness.places import LOCAL

RCLONE = Path(sys.executable).parent / "rclone"


def csv_quote(value: str) -> str:
    # rclone reads list-valued flags from the environment as CSV.
    return '"' + value.replace('"', '""') + '"'


def new_keys() -> tuple[str, str]:
    return "AK" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)


class S3Server:
    def __init__(self, root: Path, access_key: str, secret_key: str, *, cert: Path | None = None,
                 key: Path | None = None, log_dir: Path, place=LOCAL, dir_cache: str = "1s"):
        self.root, self.access_key, self.secret_key = Path(root), access_key, secret_key
        self.cert, self.key = cert, key
        self.place, self.dir_cache = place, dir_cache
        self.port = place.free_port()
        self.log_path = Path(log_dir) / f"s3-{self.port}.log"
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.cert else 'http'}://{self.place.address}:{self.port}"

    def make_bucket(self, name: str) -> Path:
        # Before start: serve s3 caches the directory tree (facts.md).
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def start(self, timeout: float = 20) -> "S3Server":
        argv = [str(RCLONE), "serve", "s3", str(self.root), "--addr", f"{self.place.listen}:{self.port}",
                "--config", os.devnull, "--dir-cache-time", self.dir_cache, "--log-level", "NOTICE",
                *names.SERVE_FLAGS]
        if self.cert:
            argv += ["--cert", str(self.cert), "--key", str(self.key)]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root.parent),
               "RCLONE_AUTH_KEY": csv_quote(f"{self.access_key},{self.secret_key}")}
        self.process = self.place.popen(argv, env=env, log=self.log_path)

        def listening():
            if self.process.poll() is not None:
                raise RuntimeError(f"serve s3 exited: {self.log_path.read_text()}")
            return self.place.accepts(self.place.address, self.port)

        wait_for(listening, timeout, "serve s3 to listen", 0.05)
        return self

    def stop(self) -> None:
        stop_group(self.process)

    def restart(self) -> None:
        """Clean state, e.g. after an upload cut off mid-way (its unfinished multipart uploads)."""
        self.stop()
        self.start()
