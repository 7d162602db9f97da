"""Why a command failed: a closed list. A failure that fits none of these is
added here, with its help text in docs/troubleshooting.md."""

from __future__ import annotations

from enum import StrEnum


class FailureReason(StrEnum):
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
    # The receiver's address broke the rule of dtn_protocol.endpoints: nothing was sent.
    DESTINATION_REFUSED = "destination_refused"
    # Two source paths would land as one file at the receiver (its filesystem ignores case or Unicode
    # form): nothing was sent.
    NAME_COLLISION = "name_collision"
    # Files whose names cannot land exactly as they are (not UTF-8, too long, ...): not sent, never renamed.
    NAME_UNSUPPORTED = "name_unsupported"
    AGENT_ERROR = "agent_error"


# rclone's words for an upload cut short by a stopped job (job/stop, or the agent's shutdown): the agent and the
# portal both read a failure carrying them, after a person's stop, as that stop.
RCLONE_STOP_TEXT = "context canceled"
