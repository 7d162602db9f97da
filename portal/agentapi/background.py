"""Work the portal server does by itself, wherever it runs: the lease reaper.

Started from the ASGI lifespan (portal.asgi), so every server process runs it;
several reapers are safe because each re-queue is a conditional update."""

from __future__ import annotations

import asyncio
import logging

from django.conf import settings

from portal.agentapi.waiters import call_db

log = logging.getLogger(__name__)


async def reaper_loop():
    from portal.transfers.reaper import reap_expired_leases

    while True:
        try:
            counts = await call_db(reap_expired_leases)
            if counts["requeued"] or counts["failed"]:
                log.info("reaper: requeued %(requeued)s, failed %(failed)s", counts)
        except Exception:
            log.exception("reaper pass failed; retrying")
        await asyncio.sleep(settings.DTN_REAPER_SECONDS)
