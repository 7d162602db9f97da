"""The portal's server entry point: gunicorn with uvicorn workers (see
docs/architecture.md for why an async server). Django answers HTTP; this
wrapper answers the ASGI lifespan, which Django does not, to run the lease
reaper and the notification worker inside every server process for as long
as it lives."""

import asyncio
import contextlib
import json
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django_application = get_asgi_application()

from django.conf import settings  # noqa: E402  (configured by get_asgi_application above)
from django.core.handlers.asgi import ASGIHandler  # noqa: E402

AGENT_PATH = "/api/agent/"


class AgentASGIHandler(ASGIHandler):
    """Django's ASGI handler for the agents' calls, without its per-request ThreadSensitiveContext.

    That context gives every request an executor and a thread of its own for the synchronous
    receivers of request_started and request_finished, kept until the request ends: a claim held
    30 s kept an idle thread 30 s, 2,000 agents kept thousands, and each new thread's start scans
    them all (threading's shutdown locks). The agents' views run their database work on the pool
    (`call_db`), never on that thread, so those few signal receivers can share asgiref's one
    executor thread instead. People's pages and API keep Django's handler."""

    async def __call__(self, scope, receive, send):
        await self.handle(scope, receive, send)


agent_application = AgentASGIHandler()


async def application(scope, receive, send):
    if scope["type"] == "http":
        return await limited(scope, receive, send)
    if scope["type"] != "lifespan":
        return await django_application(scope, receive, send)
    from portal.agentapi.background import reaper_loop
    from portal.notifications import worker as notifications

    tasks = []
    deliverer = None
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            tasks.append(asyncio.create_task(reaper_loop(), name="dtn-reaper"))
            deliverer = notifications.start()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if deliverer is not None:
                # A send in flight gets a moment to finish; an unfinished one is retried later.
                await asyncio.to_thread(deliverer.stop)
            await send({"type": "lifespan.shutdown.complete"})
            return


class _TooLarge(Exception):
    """A body without a declared length outgrew the limit while Django read it."""


async def limited(scope, receive, send):
    """The one body limit (DTN_MAX_REQUEST_BYTES), enforced before Django spools a body: its ASGI handler reads
    a whole body into a temporary file before any URL or login is checked. Answered as every API error is."""
    limit = settings.DTN_MAX_REQUEST_BYTES
    declared = dict(scope.get("headers") or []).get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return await _too_large(send, limit)
    seen = 0

    async def counted():
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge()
        return message

    handler = agent_application if scope.get("path", "").startswith(AGENT_PATH) else django_application
    try:
        return await handler(scope, counted, send)
    except _TooLarge:
        # Raised while Django still reads the body: nothing of the answer has been sent yet.
        return await _too_large(send, limit)


async def _too_large(send, limit: int):
    body = json.dumps({"error": f"the request body is larger than {limit} bytes, the most this portal takes",
                       "field": None}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
