"""Talking to rclone's remote control (rc) API, and running `rclone rcd`.

`RcClient` is a thin typed layer over rclone's rc calls (docs/content/rc.md in
rclone). Two rules shape it:

- rclone echoes a failed call's parameters back under `input`, remote
  credentials included. Errors keep only rclone's `error` text, so an
  exception or a log line can never carry a key.
- Every call is a POST with a JSON body: credentials for a receiver travel in
  that body (an inline remote, see agent/sender/destination.py) and nowhere else.

`RcdProcess` starts rclone's daemon on 127.0.0.1 with credentials made up at
start and passed in its environment (not argv, which `ps` shows to everyone),
with an in-memory config (`--config /dev/null`), and restarts it if it dies.
"""

from __future__ import annotations

import ctypes
import logging
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from agent import logs

log = logging.getLogger(__name__)

CALL_TIMEOUT = 60.0


class RcError(Exception):
    """rclone answered with an error. `message` is rclone's own text."""

    def __init__(self, path: str, message: str, status: int | None = None):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message
        self.status = status


class RcUnavailable(RcError):
    """rclone did not answer at all (not started, dead, restarting)."""


class RcAuthError(RcError):
    """rclone refused our rc credentials: a configuration problem, not a transfer one."""


class JobNotFound(RcError):
    """rclone no longer knows the job (it restarted, or forgot a finished job)."""


@dataclass(frozen=True)
class Job:
    jobid: int
    execute_id: str


class RcClient:
    def __init__(self, url: str, user: str, password: str, *, session=None, timeout: float = CALL_TIMEOUT):
        self.url = url.rstrip("/")
        self._auth = (user, password)
        self.session = session if session is not None else requests.Session()
        self.timeout = timeout

    def call(self, path: str, **params) -> dict:
        try:
            response = self.session.post(f"{self.url}/{path}", json=params, auth=self._auth, timeout=self.timeout)
        except requests.RequestException as exc:
            raise RcUnavailable(path, f"rclone rc at {self.url} did not answer ({type(exc).__name__})") from None
        if response.status_code == 401:
            raise RcAuthError(path, "rclone refused the rc user and password", 401)
        try:
            body = response.json()
        except ValueError:
            raise RcError(path, f"rclone answered {response.status_code} with no JSON",
                          response.status_code) from None
        if response.status_code != 200:
            # Only rclone's message: body["input"] repeats our parameters, secrets included.
            message = str(body.get("error", "unknown error")) if isinstance(body, dict) else str(body)
            if "job not found" in message:
                raise JobNotFound(path, message, response.status_code)
            raise RcError(path, message, response.status_code)
        return body

    # --- what the agent uses -------------------------------------------------

    def version(self) -> str:
        return self.call("core/version")["version"]

    def copy_dir(self, src_fs, dst_fs, *, group: str, config: dict, filters: dict | None = None) -> Job:
        """`sync/copy`: copies what is missing or different; never deletes at the destination.
        `filters` are rclone's filter options (`_filter`), e.g. FilesFromRaw for one segment."""
        extra = {"_filter": filters} if filters else {}
        reply = self.call("sync/copy", srcFs=src_fs, dstFs=dst_fs, _async=True, _group=group, _config=config, **extra)
        return Job(int(reply["jobid"]), str(reply.get("executeId", "")))

    def copy_file(self, src_fs, src_remote: str, dst_fs, dst_remote: str, *, group: str, config: dict) -> Job:
        reply = self.call("operations/copyfile", srcFs=src_fs, srcRemote=src_remote, dstFs=dst_fs,
                          dstRemote=dst_remote, _async=True, _group=group, _config=config)
        return Job(int(reply["jobid"]), str(reply.get("executeId", "")))

    def job_status(self, jobid: int) -> dict:
        return self.call("job/status", jobid=jobid)

    def job_stop(self, jobid: int) -> None:
        self.call("job/stop", jobid=jobid)

    def stop_group(self, group: str) -> None:
        self.call("job/stopgroup", group=group)

    def stats(self, group: str) -> dict:
        return self.call("core/stats", group=group)

    def transferred(self, group: str) -> list[dict]:
        """The group's last completed transfers and checks (rclone keeps only the last 100)."""
        return self.call("core/transferred", group=group).get("transferred") or []

    def stats_delete(self, group: str) -> None:
        self.call("core/stats-delete", group=group)

    def bwlimit(self, rate: str) -> dict:
        """rclone's bandwidth limit is process-wide: it applies to every job of this rcd."""
        return self.call("core/bwlimit", rate=rate)

    def list_files(self, fs, remote: str = "") -> list[dict]:
        """Every file under `remote` of `fs` (its Path, in rclone's encoding, and Size): what is there."""
        opt = {"recurse": True, "filesOnly": True, "noModTime": True, "noMimeType": True}
        return self.call("operations/list", fs=fs, remote=remote, opt=opt).get("list") or []

    def list_folders(self, fs, remote: str = "") -> list[dict]:
        """The folders directly in `remote` of `fs` (their Name, in rclone's encoding)."""
        opt = {"recurse": False, "dirsOnly": True, "noModTime": True, "noMimeType": True}
        return self.call("operations/list", fs=fs, remote=remote, opt=opt).get("list") or []

    def stat(self, fs, remote: str, *, config: dict | None = None) -> dict | None:
        return self.call("operations/stat", fs=fs, remote=remote, _config=config or {}).get("item")


# --- the daemon ------------------------------------------------------------

PR_SET_PDEATHSIG = 1
# Resolved here, in the parent: the child between fork and exec should only make the call.
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent() -> None:
    # If the agent is SIGKILLed, the kernel kills rclone too, so no orphan keeps
    # writing to the receiver while a restarted agent resumes the command.
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Inherited variables rclone must not see: RCLONE_* would become flags (one of
# them could turn rc auth off), and the agent's own secrets stay in the agent.
_CHILD_ENV_KEEP = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR",
                   "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


class RcdProcess:
    """`rclone rcd` on 127.0.0.1, supervised: if it dies it is started again
    (same port and credentials when possible) until `stop()`."""

    def __init__(self, binary: Path, state_dir: Path, *, verbose: bool = False, ready_timeout: float = 20.0):
        self.binary = Path(binary)
        self.cache_dir = Path(state_dir) / "rclone-cache"
        self.verbose = verbose
        self.ready_timeout = ready_timeout
        self.user = "dtn-agent"
        self._password = secrets.token_urlsafe(32)
        logs.redact(self._password)
        self.port = free_port()
        self.client = RcClient(self.url, self.user, self._password)
        self.restarts = 0
        self._process: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._start_error: str | None = None
        self._lock = threading.Lock()
        self._supervisor: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def start(self) -> RcClient:
        """Start rclone and its supervisor; returns once rclone answers."""
        self._supervisor = threading.Thread(target=self._supervise, name="rcd-supervisor", daemon=True)
        self._supervisor.start()
        if not self._ready.wait(self.ready_timeout + 5):
            self.stop()
            raise RuntimeError(f"rclone rcd did not start within {self.ready_timeout:g} s")
        if self._start_error:
            self.stop()
            raise RuntimeError(self._start_error)
        return self.client

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        with self._lock:
            process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join(timeout)

    # The supervisor thread forks every rclone it runs: PR_SET_PDEATHSIG is tied
    # to the forking thread, and this one lives as long as the agent.
    def _supervise(self) -> None:
        delay = 1.0
        ever_ready = False
        failed_starts = 0
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                self._spawn()
            except OSError as exc:
                self._start_error = f"cannot run {self.binary}: {exc.strerror}"
                self._ready.set()
                return
            with self._lock:
                process = self._process
            if self._await_ready():
                ever_ready = True
                self._ready.set()
            else:
                if process.poll() is None:
                    process.kill()
                if not ever_ready:
                    # Not once up yet: most likely the port was taken between choosing and binding.
                    failed_starts += 1
                    process.wait()
                    if failed_starts >= 3:
                        self._start_error = f"rclone rcd did not start (see the log above); binary {self.binary}"
                        self._ready.set()
                        return
                    self.port = free_port()
                    self.client.url = self.url
                    continue
            code = process.wait()
            self._ready.clear()
            if self._stopping.is_set():
                return
            self.restarts += 1
            log.warning("rclone rcd exited with status %s; starting it again (restart %d)", code, self.restarts)
            if time.monotonic() - started > 60:
                delay = 1.0
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, 30.0)
            # The port may have been taken while rclone was down.
            if not self._port_is_free():
                self.port = free_port()
                self.client.url = self.url

    def _port_is_free(self) -> bool:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", self.port))
            except OSError:
                return False
        return True

    def _spawn(self) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        env = {name: os.environ[name] for name in _CHILD_ENV_KEEP if name in os.environ}
        env["RCLONE_RC_USER"] = self.user
        env["RCLONE_RC_PASS"] = self._password
        argv = [str(self.binary), "rcd",
                "--rc-addr", f"127.0.0.1:{self.port}",
                # In memory only: no rclone.conf that could come to hold a key.
                "--config", os.devnull,
                "--cache-dir", str(self.cache_dir),
                # The agent polls every second, but may be away for a while (portal down): keep results longer.
                "--rc-job-expire-duration", "10m",
                "--log-level", "INFO" if self.verbose else "NOTICE"]
        process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, preexec_fn=_die_with_parent, start_new_session=True)
        with self._lock:
            self._process = process
        threading.Thread(target=self._forward_output, args=(process,), name="rcd-log", daemon=True).start()
        log.info("started rclone rcd (pid %s) on 127.0.0.1:%s", process.pid, self.port)

    @staticmethod
    def _forward_output(process: subprocess.Popen) -> None:
        for raw in process.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                log.info("rclone: %s", line)

    def _await_ready(self) -> bool:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline and not self._stopping.is_set():
            if self._process.poll() is not None:
                return False
            try:
                self.client.version()
                return True
            except RcAuthError:
                return False
            except RcError:
                time.sleep(0.05)
        return False
