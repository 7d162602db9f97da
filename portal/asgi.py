"""The portal's server entry point: gunicorn with uvicorn workers (see
docs/architecture.md for why an async server). Django answers HTTP; this
wrapper answers the ASGI lifespan, which Django does not, to run the lease
reaper inside every server process for as long as it lives."""

import asyncio
import contextlib
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django_application = get_asgi_application()


async def application(scope, receive, send):
    if scope["type"] != "lifespan":
        return await django_application(scope, receive, send)
    from portal.agentapi.background import reaper_loop

    tasks = []
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            tasks.append(asyncio.create_task(reaper_loop(), name="dtn-reaper"))
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await send({"type": "lifespan.shutdown.complete"})
            return
