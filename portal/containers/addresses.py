"""A receiver's address as the portal accepts it: the rule of dtn_protocol.endpoints with this
portal's settings and its own host names (a receiver may not point senders back at the portal)."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings

from dtn_protocol.endpoints import Rule


def own_hosts() -> frozenset[str]:
    names = {urlsplit(settings.SITE_URL).hostname or ""}
    for host in settings.ALLOWED_HOSTS:
        host = host.strip().lstrip(".").strip("[]")
        if host and host != "*":
            names.add(host.lower())
    return frozenset(name for name in names if name)


def receiver_rule() -> Rule:
    return Rule(allow_plain=settings.DTN_ALLOW_PLAIN_ENDPOINTS, allow_local=settings.DTN_ALLOW_LOCAL_ENDPOINTS,
                own_hosts=own_hosts())
