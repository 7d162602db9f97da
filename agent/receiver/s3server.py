"""The receiver's own backend: one `rclone serve s3` on one port for every grant.

The server knows no key of its own: for each access key it asks its auth proxy
(agent/receiver/authproxy.py), which asks this agent's grant book (agent/receiver/grantbook.py).
So a grant added or revoked never restarts the server, and the uploads of other grants in flight
carry on; a server that died is started again at the next sync (its in-flight multipart uploads
are lost with it: senders retry them). One port to open in the firewall, one process (~the memory
of one server, whatever the number of grants: docs/performance.md)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agent import names
from agent.receiver.backend import Grant, connect_host, host_for_url, tls_pool
from agent.receiver.grantbook import GrantBook
from agent.tls import Certificate

log = logging.getLogger(__name__)

# serve s3 caches directory listings (5 min by default); a short cache keeps what a sender lists
# in step with the receive folder.
DIR_CACHE_TIME = "5s"
# How long an upload with no new part is kept for its sender to resume it (a stop, an outage; docs/agent.md,
# "Design A as built"); serve s3 then aborts it and removes its partial file (seen with 10 s here). Its own
# default, said explicitly: the bound on how long a stopped transfer's parts stay at the receiver.
UPLOAD_EXPIRY = "24h"
AUTH_PROXY = Path(__file__).with_name("authproxy.py")
# What serve s3 writes while an upload is in progress (a multipart upload's stream, a PUT's body; the second
# is how rclone before 1.75.2 named its multipart ones): it keeps uploads in memory only, so once it is down
# no such file will ever be finished or removed. Its own help reserves these names.
LEFTOVER_PREFIXES = (".rclone_temp_", ".rclone_multipart_upload_")


def sweep_leftovers(receive_dir: Path) -> list[Path]:
    """Remove the partial uploads of a server that is not running (call it before starting one): the parts a
    restarted server no longer knows, as large as what had been received, hidden from every listing."""
    removed, stack = [], [receive_dir]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    elif entry.name.startswith(LEFTOVER_PREFIXES) and entry.is_file(follow_symlinks=False):
                        try:
                            os.unlink(entry.path)
                            removed.append(Path(entry.path))
                        except OSError as exc:
                            log.warning("could not remove the partial upload %s: %s", entry.path, exc)
        except OSError:
            continue  # a folder that went away or cannot be read: nothing of ours in it
    if removed:
        log.info("removed %d partial upload(s) left by an S3 server that stopped: %s", len(removed),
                 ", ".join(str(p.relative_to(receive_dir)) for p in removed[:5]))
    return removed


class SharedServer:
    def __init__(self, rclone: Path, receive_dir: Path, state_dir: Path, bind: str, port: int,
                 certificate: Certificate | None = None, advertise: str | None = None):
        self.rclone = rclone
        self.receive_dir = receive_dir
        self.state_dir = state_dir
        self.bind = bind
        self.port = port
        self.certificate = certificate
        # The name senders use, when it differs from the address listened on.
        self.advertise = advertise or bind
        # The socket's folder: private (0700) and short (a unix socket's path has ~100 bytes at most).
        self.runtime = Path(tempfile.mkdtemp(prefix="dtn-receiver-"))
        self.book = GrantBook(receive_dir, state_dir / "links")
        self.book.listen(self.runtime / "grants.sock")
        self.process: subprocess.Popen | None = None
        self.restarts = 0
        self._start()

    # --- the Backend surface ----------------------------------------------------------------------

    def sync(self, grants: list[Grant]) -> None:
        self.book.sync(grants)
        if self.process.poll() is not None:
            log.warning("the S3 server exited with %s: starting it again", self.process.returncode)
            self.restarts += 1
            self._start()

    def endpoint(self) -> str:
        scheme = "https" if self.certificate else "http"
        return f"{scheme}://{host_for_url(self.advertise)}:{self.port}"

    def health(self, grants: list[Grant]) -> dict[str, str]:
        server = self._probe()
        return {grant.grant_id: server if server != "ok" else self.book.served(grant) for grant in grants}

    def free_bytes(self) -> int | None:
        try:
            return shutil.disk_usage(self.receive_dir).free
        except OSError:
            return None

    def verify_task(self):
        """`verify_received`: what landed is read from the receive folder. Reading every byte of it
        is the point, so no per-task cap (the portal sizes the task's deadline to the data)."""
        from agent.sidechannel import FolderTasks

        return FolderTasks(self.receive_dir, max_bytes=None).verify_files

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Until the server accepts connections (or raise)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the S3 server exited ({self.process.returncode}); see {self.log_path}")
            try:
                with socket.create_connection((connect_host(self.bind), self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the S3 server is not up on port {self.port}") from None
                time.sleep(0.05)

    def stop_all(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.book.close()
        shutil.rmtree(self.runtime, ignore_errors=True)

    # --- internals --------------------------------------------------------------------------------

    @property
    def log_path(self) -> Path:
        return self.state_dir / "logs" / "s3.log"

    def _auth_proxy_command(self) -> str:
        """rclone splits --auth-proxy at spaces, with no quoting: paths with a space go by symlink."""
        python, script = Path(sys.executable), AUTH_PROXY
        if any(" " in str(path) or "\t" in str(path) for path in (python, script)):
            (self.runtime / "python").symlink_to(python)
            (self.runtime / "authproxy.py").symlink_to(script)
            python, script = self.runtime / "python", self.runtime / "authproxy.py"
        return f"{python} -I -S {script}"

    def _start(self) -> None:
        sweep_leftovers(self.receive_dir)
        args = [str(self.rclone), "serve", "s3", "--addr", f"{host_for_url(self.bind)}:{self.port}",
                "--auth-proxy", self._auth_proxy_command(), "--config", os.devnull,
                "--dir-cache-time", DIR_CACHE_TIME, "--multipart-expiry", UPLOAD_EXPIRY, "--log-level", "NOTICE",
                # Every key lands under exactly its name (agent/names.py).
                *names.SERVE_FLAGS]
        if self.certificate:
            args += ["--cert", str(self.certificate.cert_path), "--key", str(self.certificate.key_path)]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.state_dir),
               "DTN_GRANTS_SOCKET": str(self.runtime / "grants.sock")}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(args, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        log.info("serving every grant on %s (port %s)", self.endpoint(), self.port)

    def _probe(self) -> str:
        """The server as a sender meets it: it answers an anonymous request (with a refusal)."""
        if self.process.poll() is not None:
            return f"the S3 server is not running (exit {self.process.returncode})"
        scheme = "https" if self.certificate else "http"
        url = f"{scheme}://{host_for_url(connect_host(self.bind))}:{self.port}/"
        try:
            tls_pool(self.certificate, read_timeout=5).request("GET", url)
        except Exception as exc:  # any connection or TLS failure is the server's health
            return f"unhealthy: {type(exc).__name__}: {str(exc)[:200]}"
        return "ok"
