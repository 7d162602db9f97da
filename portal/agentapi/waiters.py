"""Held requests of agents (claims, side-channel tasks), per server process.

Each waiting request is a coroutine parked on an asyncio.Event, so thousands
of agents cost memory, not threads. For each kind of wait, one sweeper per
process asks the database, in a single query per tick, which of the waiting
containers have something for them, and wakes exactly those: the cost is flat
in the number of waiting agents. Work created inside this process wakes its
waiters at once."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.utils.module_loading import import_string

log = logging.getLogger(__name__)

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def run_db(fn, *args):
    """Run a short database call on a thread that keeps its connection between
    calls, reconnecting once if the server dropped it."""
    try:
        return fn(*args)
    except (OperationalError, InterfaceError):
        connection.close()
        return fn(*args)


async def call_db(fn, *args):
    global _executor
    if settings.DTN_DB_THREADS == 0:
        # On the request's own thread: what in-process tests need, where the
        # test's transaction is visible only to that thread's connection.
        return await sync_to_async(run_db)(fn, *args)
    with _executor_lock:
        if _executor is None:
            # A small fixed pool bounds this process's database connections.
            _executor = ThreadPoolExecutor(max_workers=settings.DTN_DB_THREADS, thread_name_prefix="dtn-db")
    return await asyncio.get_running_loop().run_in_executor(_executor, run_db, fn, *args)


class Waiters:
    """Requests waiting for something to appear for their container.

    `ready` names a function taking container ids and returning the subset
    that has something for them now (one query)."""

    def __init__(self, name: str, ready: str):
        self.name = name
        self._ready_path = ready
        self._events: dict = defaultdict(set)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.Task | None = None
        self._lock = threading.Lock()

    @property
    def waiting(self) -> int:
        return sum(len(events) for events in self._events.values())

    async def wait(self, container_id, timeout: float) -> bool:
        """Park until woken for this container or until timeout; True if woken."""
        return await wait_any((self,), container_id, timeout)

    def _add(self, container_id, event: asyncio.Event) -> None:
        self._ensure_sweeper()
        self._events[container_id].add(event)

    def _discard(self, container_id, event: asyncio.Event) -> None:
        events = self._events.get(container_id)
        if events is not None:
            events.discard(event)
            if not events:
                del self._events[container_id]

    def wake(self, container_id) -> None:
        for event in list(self._events.get(container_id, ())):
            event.set()

    def wake_threadsafe(self, container_id) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.wake, container_id)

    def _ensure_sweeper(self):
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._sweeper is None or self._sweeper.done() or self._loop is not loop:
                self._loop = loop
                self._sweeper = loop.create_task(self._sweep_forever(), name=f"dtn-{self.name}-sweeper")

    async def _sweep_forever(self):
        ready = import_string(self._ready_path)
        interval = settings.DTN_CLAIM_SWEEP_MS / 1000
        while True:
            await asyncio.sleep(interval)
            if not self._events:
                continue
            try:
                found = await call_db(ready, list(self._events))
            except Exception:  # the sweeper must outlive a database hiccup
                log.exception("%s sweep failed; retrying", self.name)
                continue
            for container_id in found:
                self.wake(container_id)


async def wait_any(waiters, container_id, timeout: float) -> bool:
    """Park until any of `waiters` wakes this container, or until timeout; True if woken.
    One event in each: e.g. an idle agent's claim, woken by a command or by a task."""
    event = asyncio.Event()
    for each in waiters:
        each._add(container_id, event)
    try:
        await asyncio.wait_for(event.wait(), timeout)
        return True
    except asyncio.TimeoutError:
        return False
    finally:
        for each in waiters:
            each._discard(container_id, event)


claims = Waiters("claims", "portal.transfers.queue.queued_containers")
tasks = Waiters("tasks", "portal.containers.tasks.pending_containers")
