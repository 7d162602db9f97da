"""The lease reaper: a command whose agent stopped reporting goes back to the queue,
and fails with lease_expired once DTN_MAX_ATTEMPTS leases ran out.

It runs in every server process (portal/agentapi/background.py) and as
`manage.py reap_leases`. Several at once are safe: each change is conditional on
the deadline it read, so a report that renewed the lease meanwhile wins."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from dtn_protocol.failures import FailureReason
from dtn_protocol.states import LEASED_STATES, CommandState
from portal.transfers.models import Command
from portal.transfers.queue import carry, change_state

log = logging.getLogger(__name__)

# Commands taken back per pass; the rest wait for the next pass.
BATCH = 500


def reap_expired_leases(now=None) -> dict[str, int]:
    """Give expired leases back to the queue, or fail them after the last attempt."""
    now = now or timezone.now()
    counts = {"requeued": 0, "failed": 0}
    expired = Command.objects.filter(state__in=LEASED_STATES, lease_expires_at__lt=now)
    for pk, attempt, deadline in expired.values_list("pk", "attempt", "lease_expires_at")[:BATCH]:
        with transaction.atomic():
            # Read afresh: a stop asked for since the list was read counts.
            if Command.objects.filter(pk=pk, lease_expires_at=deadline, cancel_requested=True).exists():
                # Stopped by a person while its agent went silent: it stays stopped.
                new, outcome = CommandState.CANCELED, {"reason": FailureReason.CANCELED_BY_USER,
                                                       "message": "stopped while the agent was not reporting"}
            elif attempt >= settings.DTN_MAX_ATTEMPTS:
                new, outcome = CommandState.FAILED, {
                    "reason": FailureReason.LEASE_EXPIRED,
                    "message": f"the agent stopped reporting; gave up after {attempt} attempts"}
            else:
                new, outcome = CommandState.QUEUED, {}
            changed = change_state(pk, LEASED_STATES, new, now=now, where={"lease_expires_at": deadline}, **outcome)
            if changed:
                counts["requeued" if new == CommandState.QUEUED else "failed"] += 1
                carry(Command.objects.get(pk=pk),
                      note=("retry", f"the agent stopped reporting; lease {attempt} expired, back in the queue"))
        if changed:
            log.warning("lease of command %s expired (attempt %s)", pk, attempt)
    return counts
