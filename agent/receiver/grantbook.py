"""The grants the receiver's one S3 server serves, as its auth proxy asks for them.

`rclone serve s3 --auth-proxy PROGRAM` runs PROGRAM for an access key it has no answer for (an
answer is kept up to 5 minutes), with `{"user": <access key>}` on stdin, and takes a backend with
that key's secret on stdout. The program (agent/receiver/authproxy.py) asks this book over a unix
socket in a private folder, and only this agent's uid may connect: the grants' secrets stay in the
agent's memory, never in a file or on a command line.

A grant's backend is a `combine` remote with one upstream: its bucket name mapped to
`links/<grant id>`, a symlink to `<receive folder>/<bucket>`. The key lists, reads and writes that
bucket only (another bucket answers 404) and objects land there as plain files.

Revocation: rclone keeps its answer for a key up to 5 minutes, and restarting the server would cut
every other grant's uploads. So a revoked grant's link is replaced by a plain file at once: the
cached backend's root is then no folder, and every request with that key fails (nothing read,
nothing written) from the sync on; after rclone's 5 minutes the key itself is refused
(AccessDenied). The link is a file, not a missing path, because rclone would make a missing root
again as a folder and write into it."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import socketserver
import struct
import threading
import time
from pathlib import Path

from agent.receiver.backend import Grant

log = logging.getLogger(__name__)

# A revoked grant's file outlives rclone's cache of the key's answer (5 minutes), then goes.
TOMBSTONE_SECONDS = 600
MAX_QUESTION = 4096


def combine_upstream(bucket: str, root: Path) -> str:
    """rclone's `upstreams` option: space-separated, each item CSV-quoted when it holds a space."""
    item = f"{bucket}={root}"
    return '"' + item.replace('"', '""') + '"'


class GrantBook:
    def __init__(self, receive_dir: Path, links_dir: Path):
        self.receive_dir = receive_dir
        self.links_dir = links_dir
        # A new book goes with a new server, which has cached nothing: last run's links and files go.
        shutil.rmtree(links_dir, ignore_errors=True)
        links_dir.mkdir(parents=True, mode=0o700)
        self._by_key: dict[str, Grant] = {}
        self._grants: dict[str, Grant] = {}
        self._tombstones: dict[str, float] = {}
        self._lock = threading.Lock()
        self._server: socketserver.UnixStreamServer | None = None

    # --- what the agent tells it ----------------------------------------------------------------

    def sync(self, grants: list[Grant]) -> None:
        wanted = {grant.grant_id: grant for grant in grants}
        for grant in wanted.values():
            self.bucket_dir(grant.bucket).mkdir(parents=True, exist_ok=True)
            link = self.link(grant.grant_id)
            if not link.is_symlink():
                link.unlink(missing_ok=True)
                link.symlink_to(self.bucket_dir(grant.bucket), target_is_directory=True)
                self._tombstones.pop(grant.grant_id, None)
        with self._lock:
            revoked = [grant_id for grant_id in self._grants if grant_id not in wanted]
            self._grants = wanted
            self._by_key = {grant.access_key: grant for grant in wanted.values()}
        now = time.monotonic()
        for grant_id in revoked:
            self._bury(grant_id, now)
        for grant_id, since in list(self._tombstones.items()):
            if now - since > TOMBSTONE_SECONDS:
                self.link(grant_id).unlink(missing_ok=True)
                del self._tombstones[grant_id]

    def bucket_dir(self, bucket: str) -> Path:
        return self.receive_dir / bucket

    def link(self, grant_id: str) -> Path:
        return self.links_dir / grant_id

    def served(self, grant: Grant) -> str:
        """'ok', or why a sender holding this grant would not be served."""
        link = self.link(grant.grant_id)
        if not link.is_symlink():
            return "not served yet"
        folder = self.bucket_dir(grant.bucket)
        if not folder.is_dir():
            return f"its folder {folder} is gone"
        if not os.access(folder, os.W_OK | os.X_OK):
            return f"its folder {folder} is not writable by this agent"
        return "ok"

    def _bury(self, grant_id: str, now: float) -> None:
        link = self.link(grant_id)
        link.unlink(missing_ok=True)
        link.write_text("revoked\n")
        self._tombstones[grant_id] = now
        log.info("grant %s revoked: its key reaches nothing from now on", grant_id)

    # --- what the auth proxy asks -----------------------------------------------------------------

    def answer(self, access_key: str) -> dict:
        """rclone's backend for this key, or {} (refused)."""
        with self._lock:
            grant = self._by_key.get(access_key)
        if grant is None:
            return {}
        return {"type": "combine", "upstreams": combine_upstream(grant.bucket, self.link(grant.grant_id)),
                "_root": "", "_secret_access_key": grant.secret_key}

    def listen(self, path: Path) -> None:
        book = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                if not _same_user(self.connection):
                    return
                try:
                    asked = json.loads(self.rfile.readline(MAX_QUESTION))
                    user = asked.get("user") if isinstance(asked, dict) else None
                    answer = book.answer(user) if isinstance(user, str) else {}
                except ValueError:
                    answer = {}
                self.wfile.write(json.dumps(answer).encode())

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        self._server = Server(str(path), Handler)
        os.chmod(path, 0o600)
        threading.Thread(target=self._server.serve_forever, name="grant-book", daemon=True).start()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _same_user(connection: socket.socket) -> bool:
    """Only a process of this agent's uid (rclone's auth proxy) may ask for a secret."""
    creds = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid == os.getuid()
