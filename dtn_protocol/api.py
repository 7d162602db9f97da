"""Where the agents' API lives, and how each kind of bearer token begins."""

from __future__ import annotations

API_PREFIX = "/api/agent/v1/"
# A prefix names the kind, so a leaked token is recognisable (e.g. by secret scanners).
AGENT_TOKEN_PREFIX = "dtn_agent_"
PERSONAL_TOKEN_PREFIX = "dtn_pat_"
