"""Verification where the bytes landed (docs/agent.md, step 9): once every file is sent
and reported with its SHA-256, the attempt reports the `verifying` phase until the
portal, having asked the receiver, answers with its verdict."""

from __future__ import annotations

from agent.sender.errors import TransferFailed
from agent.sender.lease import Lease
from agent.sender.meter import Meter
from dtn_protocol.failures import FailureReason
from dtn_protocol.states import VERIFIED_ENOUGH, Phase, Verification

# The receiver usually answers within a second: ask often at first, then at the report interval,
# so the verdict does not wait a whole interval.
FIRST_ASK_SECONDS = 0.1
ASK_GROWTH = 1.5


def await_verdict(meter: Meter, lease: Lease, report_every: float) -> None:
    meter.phase = Phase.VERIFYING
    meter.event("verifying", "every file is at the receiver; waiting for its SHA-256 of what landed")

    def answered() -> bool:
        reply = lease.report(force=True)
        if reply is None:
            return False
        verdict = reply.verification or {}
        state = verdict.get("state")
        if state is None or state in VERIFIED_ENOUGH:
            # No verdict at all: a portal without receiver-side verification.
            meter.event("verification", f"{state or 'not_applicable'}: {verdict.get('message', '')}".rstrip(": "))
            return True
        if state == Verification.FAILED:
            named = verdict.get("files") or []
            missing = verdict.get("missing") or []
            # Files missing at the receiver are no checksum difference: the reason says which it is.
            reason = (FailureReason.RCLONE_ERROR if named and len(missing) >= len(named)
                      else FailureReason.CHECKSUM_MISMATCH)
            raise TransferFailed(reason, verdict.get("message")
                                 or ("SHA-256 at the receiver differs for " + ", ".join(named[:20])))
        return False

    lease.wait(until=answered, every=_growing(FIRST_ASK_SECONDS, ASK_GROWTH, report_every))


def _growing(first: float, factor: float, most: float):
    wait = first
    while True:
        yield wait
        wait = min(wait * factor, most)
