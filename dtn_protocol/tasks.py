"""The side channel's task kinds: short questions the portal asks an agent,
answered within seconds even while it runs a transfer (docs/protocol.md)."""

from __future__ import annotations

from enum import StrEnum


class TaskKind(StrEnum):
    # A sender lists its send folder, for a person picking what to send.
    LIST_SEND_FOLDER = "list_send_folder"
    # A sender hashes files of its send folder.
    VERIFY_FILES = "verify_files"
    # A receiver hashes what landed under its receive folder (verify_files there, by another name: a
    # container that both sends and receives answers both).
    VERIFY_RECEIVED = "verify_received"
    # A sender checks the path to a receiver.
    NETWORK_CHECK = "network_check"
    # A receiver fetches its grants now rather than at its next heartbeat.
    SYNC_GRANTS = "sync_grants"
    # A receiver lists one level of a grant's folder, for the grantee choosing where to send (what is there).
    LIST_RECEIVED = "list_received"
