"""Bearer tokens stored the way well-run services store them.

A token reads `<prefix><lookup>_<secret>`: the prefix names the kind (so a
leaked token is recognisable, e.g. by secret scanners), the lookup finds the
row, and only an HMAC of the secret under TOKEN_HMAC_KEY is stored. A wrong
prefix, an unknown lookup and a wrong secret all cost one HMAC and one
constant-time compare, so timing tells an attacker nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from django.conf import settings

LOOKUP_LENGTH = 12


@dataclass(frozen=True)
class MintedToken:
    token: str  # shown once to the person, never stored
    lookup: str
    digest: str


def digest(secret: str) -> str:
    return hmac.new(settings.TOKEN_HMAC_KEY.encode(), secret.encode(), hashlib.sha256).hexdigest()


def mint(prefix: str) -> MintedToken:
    lookup = secrets.token_hex(LOOKUP_LENGTH // 2)
    secret = secrets.token_urlsafe(32)
    return MintedToken(token=f"{prefix}{lookup}_{secret}", lookup=lookup, digest=digest(secret))


def split(token: str, prefix: str) -> tuple[str, str]:
    """(lookup, secret); both empty when the token is not of this kind."""
    if not token.startswith(prefix):
        return "", ""
    rest = token[len(prefix):]
    lookup, sep, secret = rest[:LOOKUP_LENGTH], rest[LOOKUP_LENGTH:LOOKUP_LENGTH + 1], rest[LOOKUP_LENGTH + 1:]
    if sep != "_" or not secret:
        return "", ""
    return lookup, secret


def verify(secret: str, stored_digest: str | None) -> bool:
    # An unknown lookup still pays for an HMAC and a compare.
    return hmac.compare_digest(digest(secret), stored_digest or "0" * 64) and stored_digest is not None


def bearer(request_meta: dict) -> str:
    header = request_meta.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""
