"""Where the agents' API lives, how each kind of bearer token begins, and how a receiver's
certificate is named by its fingerprint."""

from __future__ import annotations

import hashlib

API_PREFIX = "/api/agent/v1/"
# A prefix names the kind, so a leaked token is recognisable (e.g. by secret scanners).
AGENT_TOKEN_PREFIX = "dtn_agent_"
PERSONAL_TOKEN_PREFIX = "dtn_pat_"


def certificate_fingerprint(der: bytes) -> str:
    """A certificate's SHA-256 over its DER encoding, as a receiver reports it and a sender pins it:
    'ab:cd:…'."""
    digest = hashlib.sha256(der).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))
