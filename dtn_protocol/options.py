"""What a send may ask of the sender's agent: the words and bounds the portal
checks a person's choices against and the agent checks its command against."""

from __future__ import annotations

import re
from enum import StrEnum

from dtn_protocol.units import GiB, KiB, MiB


class Overwrite(StrEnum):
    # Nothing is ever deleted at the destination under either policy.
    UPDATE_CHANGED = "update_changed"
    SKIP_EXISTING = "skip_existing"


class CheckMode(StrEnum):
    """What the sender does with the network check it runs before a transfer."""

    ENFORCE = "enforce"  # a no-go stops the transfer
    OVERRIDE = "override"  # a no-go is recorded and the transfer goes on
    SKIP = "skip"  # only reachability, the certificate pin and the keys; no probe, no verdict enforced


DEFAULT_OVERWRITE = Overwrite.UPDATE_CHANGED
DEFAULT_CHECK_MODE = CheckMode.ENFORCE

# S3's bounds on a multipart upload's part size.
S3_MIN_PART = 5 * MiB
S3_MAX_PART = 5 * GiB
# The agent's tuning a person may set instead of letting the agent choose: name -> (lowest, highest).
TUNING_BOUNDS = {"transfers": (1, 256), "checkers": (1, 256), "upload_concurrency": (1, 256),
                 "chunk_size": (S3_MIN_PART, S3_MAX_PART)}

_LIMIT = re.compile(r"^(\d+(?:\.\d+)?)([BKMGTPbkmgtp]?)i?$")
_LIMIT_UNITS = {"": 1, "b": 1, "k": KiB, "m": MiB, "g": GiB, "t": 1024 * GiB, "p": 1024**2 * GiB}


def limit_bytes_per_s(limit: str | None) -> float | None:
    """rclone's --bwlimit value in bytes/s ('50M' is 50 MiB/s), or None."""
    match = _LIMIT.match((limit or "").strip())
    return float(match.group(1)) * _LIMIT_UNITS[match.group(2).lower()] if match else None
