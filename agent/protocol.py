"""The vocabulary the agent and the portal share.

Defined here, once, with no dependencies, so the portal imports it and
neither side can invent a state or a failure reason the other lacks.
"""

from __future__ import annotations

from enum import StrEnum

API_PREFIX = "/api/agent/v1/"
AGENT_TOKEN_PREFIX = "dtn_agent_"


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


class FailureReason(StrEnum):
    """Why a command failed: a closed list. A failure that fits none of these
    is added here, with its help text in docs/troubleshooting.md."""

    AUTH_FAILED = "auth_failed"
    RECEIVER_UNREACHABLE = "receiver_unreachable"
    CERTIFICATE_MISMATCH = "certificate_mismatch"
    RECEIVER_FULL = "receiver_full"
    NETWORK_NO_GO = "network_no_go"
    SOURCE_MISSING = "source_missing"
    SOURCE_OUTSIDE_ROOT = "source_outside_root"
    CHECKSUM_MISMATCH = "checksum_mismatch"
    RCLONE_ERROR = "rclone_error"
    LEASE_EXPIRED = "lease_expired"
    CANCELED_BY_USER = "canceled_by_user"
    GRANT_REVOKED = "grant_revoked"
    AGENT_ERROR = "agent_error"


# Exit statuses of `python -m agent`, distinct so a supervisor can tell them apart.
EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_TOKEN_REJECTED = 3
