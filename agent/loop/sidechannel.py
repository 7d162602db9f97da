"""The side channel: short tasks answered within seconds, even while a long
command runs (docs/protocol.md, "Side channel").

Tasks arrive by a long-poll of their own (`POST tasks/next`, held until a task
is asked) and in heartbeat replies as `tasks: [{task_id, kind, params}]`; a
worker thread runs each through the handler registered for its kind and
answers `POST tasks/{task_id}`. The handlers (agent/tasks.py, agent/sender/tasks.py,
a receiver's `verify_received`) are given at start or with `register`.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import OrderedDict

from agent.loop.portal import Backoff, CommandGone, PortalClient, PortalError, PortalUnavailable, TokenRejected
from agent.tasks import Handler, TaskRefused

log = logging.getLogger(__name__)

REMEMBERED_TASKS = 1000
# How long one task poll is held by the portal (it may hold less).
POLL_HOLD_SECONDS = 30.0


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
