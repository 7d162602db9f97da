"""The delivery worker: a thread in each server process, started and stopped
by the ASGI lifespan (portal/asgi.py) like the lease reaper.

A thread rather than a task on the event loop: sending blocks (SMTP, HTTP),
and it must not take the database threads that held claims need. An event
queued in this process wakes it at once; others (another process, a
management command) are found by polling every DTN_NOTIFY_POLL_SECONDS."""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import connection

log = logging.getLogger(__name__)

_wake = threading.Event()
PRUNE_EVERY_SECONDS = 3600


def wake() -> None:
    _wake.set()


class Worker(threading.Thread):
    def __init__(self):
        super().__init__(name="dtn-notifications", daemon=True)
        self._stopping = threading.Event()
        self._pruned_at = 0.0

    def stop(self, timeout: float = 5) -> None:
        self._stopping.set()
        _wake.set()
        self.join(timeout)

    def run(self) -> None:
        from portal.notifications import outbox

        while not self._stopping.is_set():
            _wake.clear()
            busy = 0
            try:
                busy = outbox.deliver_due()
                if time.monotonic() - self._pruned_at > PRUNE_EVERY_SECONDS:
                    self._pruned_at = time.monotonic()
                    outbox.prune()
            except Exception:
                log.exception("notification pass failed; retrying")
            finally:
                # This thread's own connection: never left open between passes.
                connection.close()
            if not busy:
                _wake.wait(settings.DTN_NOTIFY_POLL_SECONDS)


def start() -> Worker:
    worker = Worker()
    worker.start()
    return worker
