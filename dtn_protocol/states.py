"""States of a command and of a transfer, and the changes between them.

A command is one attempt, queued on the sender's container and leased by one
agent instance. TRANSITIONS is the state machine: the portal's queue applies
every change through it (portal/transfers/queue.py), so a change it does not
list cannot happen, whoever asks for it.
"""

from __future__ import annotations

from enum import StrEnum


class CommandKind(StrEnum):
    """What a command asks its agent to do."""

    TRANSFER = "transfer"


class CommandState(StrEnum):
    QUEUED = "queued"
    CLAIMED = "claimed"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


TERMINAL_STATES = frozenset({CommandState.SUCCEEDED, CommandState.FAILED, CommandState.CANCELED})
# States in which a command holds a lease and belongs to one agent instance.
LEASED_STATES = frozenset({CommandState.CLAIMED, CommandState.RUNNING})

# From each state, the states it may change to. A leased state may "change" to itself: a report that
# renews the lease. Terminal states never change.
TRANSITIONS: dict[CommandState, frozenset[CommandState]] = {
    # claimed by an agent; stopped before it started; failed when its grant is revoked
    CommandState.QUEUED: frozenset({CommandState.CLAIMED, CommandState.CANCELED, CommandState.FAILED}),
    # reports of its agent, and back to the queue when the lease expires
    CommandState.CLAIMED: frozenset({CommandState.CLAIMED, CommandState.RUNNING, CommandState.QUEUED,
                                     *TERMINAL_STATES}),
    CommandState.RUNNING: frozenset({CommandState.RUNNING, CommandState.QUEUED, *TERMINAL_STATES}),
    **{state: frozenset() for state in TERMINAL_STATES},
}
# What an agent may report: only the portal queues (and re-queues) a command.
REPORTED_STATES = tuple(state for state in CommandState if state != CommandState.QUEUED)


def may_change(old: str, new: str) -> bool:
    return CommandState(new) in TRANSITIONS[CommandState(old)]


class TransferState(StrEnum):
    """A transfer's state, derived from its latest command (TRANSFER_STATE_OF)."""

    QUEUED = "queued"
    ACTIVE = "active"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


TRANSFER_STATE_OF = {
    CommandState.QUEUED: TransferState.QUEUED,
    CommandState.CLAIMED: TransferState.ACTIVE,
    CommandState.RUNNING: TransferState.ACTIVE,
    CommandState.SUCCEEDED: TransferState.SUCCEEDED,
    CommandState.FAILED: TransferState.FAILED,
    CommandState.CANCELED: TransferState.CANCELED,
}
FINISHED_TRANSFER_STATES = frozenset({TransferState.SUCCEEDED, TransferState.FAILED, TransferState.CANCELED})
# Restart is for transfers that did not complete; a succeeded one is done.
RESTARTABLE_TRANSFER_STATES = frozenset({TransferState.FAILED, TransferState.CANCELED})


class FileOutcome(StrEnum):
    """What became of one file in a transfer (a per-file result), each from evidence: the sender's agent says
    sent (rclone uploaded it), skipped (already there and equal) or failed (rclone's error); the receiver's
    own reading of what landed may then say missing (not there) or differs (its SHA-256 is not the sender's)."""

    SENT = "sent"
    SKIPPED = "skipped"
    FAILED = "failed"
    MISSING = "missing"
    DIFFERS = "differs"


# What a sender's agent may report; the other outcomes are the receiver's evidence, recorded by the portal.
REPORTED_FILE_OUTCOMES = (FileOutcome.SENT, FileOutcome.SKIPPED, FileOutcome.FAILED)
# Outcomes that count as the file failing the transfer.
FAILED_FILE_OUTCOMES = frozenset({FileOutcome.FAILED, FileOutcome.MISSING, FileOutcome.DIFFERS})


class Phase(StrEnum):
    """A report's `progress.phase` that changes what the portal answers."""

    # Every file is at the receiver: the sender waits for the receiver's SHA-256 of what landed.
    VERIFYING = "verifying"


class Verification(StrEnum):
    """The portal's verdict on what landed, in its answer to a `verifying` report."""

    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"
    # No receiver agent to ask (a hand-entered S3 endpoint): rclone's own hash checks are all there is.
    NOT_APPLICABLE = "not_applicable"


# The verdicts with which a sender finishes its command as succeeded.
VERIFIED_ENOUGH = frozenset({Verification.PASSED, Verification.NOT_APPLICABLE})
