"""The network check's words: its verdict, and the level of each finding in it."""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    GO = "go"
    WARN = "warn"
    # A no-go names its failure reason (dtn_protocol.failures) in the report's `reason`.
    NO_GO = "no_go"
