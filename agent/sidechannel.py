"""The side channel: short tasks answered within seconds, even while a long
command runs (docs/protocol.md, "Side channel").

Tasks arrive by a long-poll of their own (`POST tasks/next`, held until a task
is asked) and in heartbeat replies as `tasks: [{task_id, kind, params}]`; a
worker thread runs each through the handler registered for its kind and
answers `POST tasks/{task_id}`. A handler is a plain function
`params -> result dict`; it raises `TaskRefused` for a request it will not do
(the message goes back to the portal) and must finish in seconds. The
receiver and network-check issues register their own kinds (`network_check`,
a receiver's `verify_received` over its receive folder) with `register`.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import stat
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, ContextManager

from agent import paths
from agent.portal import Backoff, CommandGone, PortalClient, PortalError, PortalUnavailable, TokenRejected
from dtn_protocol.netcheck import Verdict
from dtn_protocol.tasks import TaskKind

log = logging.getLogger(__name__)

Handler = Callable[[dict], dict]
LIST_LIMIT = 1000
VERIFY_MAX_FILES = 1000
# A side-channel answer should come in seconds; hashing more than this is a transfer's job.
VERIFY_MAX_BYTES = 2 * 1024**3
REMEMBERED_TASKS = 1000
# How long one task poll is held by the portal (it may hold less).
POLL_HOLD_SECONDS = 30.0


class TaskRefused(Exception):
    """The task cannot be done as asked; the message is for the person who asked."""


class FolderTasks:
    """Tasks over one folder (the send folder here; a receiver passes its receive folder).

    `max_bytes` bounds what one verify_files task reads; None for none (a receiver
    verifying a transfer, where the portal sizes the task's deadline to the data)."""

    def __init__(self, root: Path, max_bytes: int | None = VERIFY_MAX_BYTES):
        self.root = Path(root).resolve()
        self.max_bytes = max_bytes

    def _resolve(self, raw: str) -> paths.Resolved:
        try:
            return paths.resolve(self.root, raw)
        except paths.PathRefused as refused:
            raise TaskRefused(refused.message) from None

    def list_folder(self, params: dict) -> dict:
        """One level of the folder: what the send form offers to pick from."""
        raw = params.get("path") or "."
        limit = params.get("limit", LIST_LIMIT)
        if not isinstance(limit, int) or not 1 <= limit <= 10 * LIST_LIMIT:
            raise TaskRefused(f"limit must be between 1 and {10 * LIST_LIMIT}")
        where = self._resolve(raw)
        if not where.is_dir:
            raise TaskRefused(f"{raw!r} is a file, not a folder")
        entries = []
        truncated = False
        for child in sorted(where.path.iterdir(), key=lambda p: p.name):
            if len(entries) >= limit:
                truncated = True
                break
            info = child.lstat()
            if stat.S_ISLNK(info.st_mode):
                kind = "link"
            elif stat.S_ISDIR(info.st_mode):
                kind = "dir"
            elif stat.S_ISREG(info.st_mode):
                kind = "file"
            else:
                continue
            entries.append({"name": child.name, "path": f"{where.rel}/{child.name}" if where.rel else child.name,
                            "type": kind, "size": info.st_size if kind == "file" else None,
                            "mtime": int(info.st_mtime)})
        return {"path": where.rel, "entries": entries, "truncated": truncated}

    def verify_files(self, params: dict) -> dict:
        """SHA-256 and size of the named files, to compare with the other side's."""
        return verify_each(params, self._locate, self.max_bytes)

    def _locate(self, name: str) -> Located:
        where = self._resolve(name)
        if where.is_dir:
            raise TaskRefused("a folder, not a file")
        return Located(where.rel, where.path.stat().st_size, lambda: open(where.path, "rb"))


@dataclass(frozen=True)
class Located:
    """One file a verify task names, found: its normalised path, its size, and how to read it."""

    rel: str
    size: int
    open: Callable[[], ContextManager[BinaryIO]]


def verify_each(params: dict, locate: Callable[[str], Located], max_bytes: int | None) -> dict:
    """The verify task over any store: `locate` finds one named file or raises TaskRefused,
    which is that file's answer (the others are still hashed). A receive folder and a
    MinIO's buckets (agent/minio_grants.py) answer alike."""
    names = params.get("paths")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise TaskRefused("paths must be a non-empty list of file paths")
    if len(names) > VERIFY_MAX_FILES:
        raise TaskRefused(f"at most {VERIFY_MAX_FILES} files per task")
    results, budget = [], max_bytes
    for name in names:
        try:
            found = locate(name)
        except TaskRefused as refused:
            results.append({"path": name, "error": str(refused)})
            continue
        if budget is not None:
            if found.size > budget:
                results.append({"path": name, "size": found.size, "error": "too large for a side-channel task"})
                continue
            budget -= found.size
        with found.open() as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        results.append({"path": found.rel, "size": found.size, "sha256": digest})
    return {"files": results}


class SideChannel:
    """A worker thread that runs side-channel tasks one at a time and answers them,
    and (given `poller`, a client of its own) a thread that long-polls for them."""

    def __init__(self, portal: PortalClient, handlers: dict[str, Handler] | None = None, *,
                 poller: PortalClient | None = None, poll_seconds: float = POLL_HOLD_SECONDS,
                 backoff: Backoff | None = None):
        self.portal = portal
        self.poller = poller
        self.poll_seconds = poll_seconds
        self.backoff = backoff or Backoff()
        self.handlers: dict[str, Handler] = dict(handlers or {})
        self._queue: queue.Queue = queue.Queue()
        # Tasks taken or answered, so one offered again (next heartbeat, next poll) is not run twice.
        self._known: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.token_rejected = threading.Event()
        # Whether this thread long-polls: an idle sender's claim brings the tasks too (one long-poll
        # per agent, not two); while a command runs, or at a site with nothing to claim, it polls here.
        self._poll_wanted = threading.Event()
        self._poll_wanted.set()

    def register(self, kind: str, handler: Handler) -> None:
        self.handlers[kind] = handler

    def submit(self, tasks) -> int:
        """Queue the tasks of a heartbeat reply; returns how many were new."""
        if not isinstance(tasks, list):
            return 0
        new = 0
        for task in tasks:
            task_id = str(task.get("task_id", "")) if isinstance(task, dict) else ""
            if not task_id:
                continue
            with self._lock:
                if task_id in self._known:
                    continue
                self._known[task_id] = None
                while len(self._known) > REMEMBERED_TASKS:
                    self._known.popitem(last=False)
            self._queue.put(task)
            new += 1
        return new

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="side-channel", daemon=True)
        self._thread.start()
        if self.poller is not None:
            # A daemon: a held poll is abandoned at exit rather than waited for.
            threading.Thread(target=self._poll, name="side-channel-poll", daemon=True).start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def poll_once(self) -> bool:
        """One long-poll for tasks; False when polling should end."""
        try:
            self.submit(self.poller.wait_tasks(self.poll_seconds))
            self.backoff.reset()
            return True
        except TokenRejected:
            self.token_rejected.set()
            return False
        except PortalUnavailable as exc:
            delay = self.backoff.next_delay()
            log.warning("side-channel poll failed (%s); again in %.1f s", exc, delay)
            return not self._stopping.wait(delay)
        except PortalError as exc:
            if exc.status in (404, 405):
                log.info("the portal has no task long-poll; side-channel tasks come with heartbeats")
                return False
            delay = self.backoff.next_delay()
            log.error("side-channel poll refused: %s; again in %.1f s", exc, delay)
            return not self._stopping.wait(delay)

    def poll_alone(self, wanted: bool) -> None:
        """Long-poll for tasks here (True), or leave it to the claims that take them (False)."""
        if wanted:
            self._poll_wanted.set()
        else:
            self._poll_wanted.clear()

    def _poll(self) -> None:
        while not self._stopping.is_set():
            if not self._poll_wanted.wait(0.5):
                continue
            if not self.poll_once():
                return

    def _work(self) -> None:
        while True:
            task = self._queue.get()
            if task is None:
                return
            self.run_one(task)

    def run_one(self, task: dict) -> None:
        task_id, kind = str(task["task_id"]), task.get("kind")
        params = task.get("params") or {}
        handler = self.handlers.get(kind)
        try:
            if handler is None:
                raise TaskRefused(f"this agent has no task {kind!r} (it knows {', '.join(sorted(self.handlers))})")
            if not isinstance(params, dict):
                raise TaskRefused("params must be an object")
            result, ok, error = handler(params), True, ""
        except TaskRefused as refused:
            result, ok, error = {}, False, str(refused)
        except Exception as exc:  # a bug in a handler must not end the side channel
            log.exception("side-channel task %s (%s) failed", task_id, kind)
            result, ok, error = {}, False, f"the agent failed: {type(exc).__name__}"
        try:
            self.portal.answer_task(task_id, ok=ok, result=result, error=error)
        except TokenRejected:
            self.token_rejected.set()
        except CommandGone:
            pass  # the portal gave up on the task; nothing to answer
        except PortalError as exc:
            log.warning("could not answer side-channel task %s: %s", task_id, exc)
            # Forget it, so the portal's next offer of the same task is taken again.
            with self._lock:
                self._known.pop(task_id, None)


def network_check_task(state_dir: Path, limits, s3_factory=None, endpoint_rule=None) -> Handler:
    """`network_check`: the same check a transfer starts with, on demand, for the
    destination the portal gives (with keys, for this answer only)."""
    from agent import netcheck, transfer, tuning

    def handle(params: dict) -> dict:
        try:
            d = transfer.parse_destination(params.get("destination"))
        except transfer.BadDestination as exc:
            raise TaskRefused(str(exc)) from None
        total, files = params.get("total_bytes"), params.get("files")
        total = total if isinstance(total, int) and total >= 0 else None
        files = files if isinstance(files, int) and files > 0 else (1 if total else None)
        try:
            transfer.check_destination(d, endpoint_rule or transfer.Rule())
            ca_file = transfer.pin_certificate(state_dir, d)
        except transfer.TransferFailed as exc:
            return netcheck.refused(d.endpoint, exc.reason, exc.message)
        report = transfer.run_network_check(d, ca_file, limits=limits, s3_factory=s3_factory or transfer.minio_s3,
                                            total_bytes=total, files=files)
        if report["verdict"] != Verdict.NO_GO and total:
            choice = tuning.choose(tuning.Measured.from_report(report), tuning.FileMix.uniform(files, total))
            netcheck.attach_tuning(report, choice)
        return report

    return handle


def sender_handlers(send_dir: Path, state_dir: Path | None = None, limits=None,
                    endpoint_rule=None) -> dict[str, Handler]:
    folder = FolderTasks(send_dir)
    handlers = {TaskKind.LIST_SEND_FOLDER: folder.list_folder, TaskKind.VERIFY_FILES: folder.verify_files}
    if state_dir is not None:
        from agent import netcheck

        handlers[TaskKind.NETWORK_CHECK] = network_check_task(state_dir, limits or netcheck.Limits(),
                                                              endpoint_rule=endpoint_rule)
    return handlers
