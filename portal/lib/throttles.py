"""Request rates per address (signing up, getting a token) and per container (the agents' protocol), counted in
Django's cache: the database cache by default (settings.CACHES), which every worker and every replica share,
so a second process is not a second allowance.

Rates come from settings at each request (DTN_THROTTLE_*), not from DRF's class attributes bound at import, so
a deployment, and a test, sets them like any other setting. Addresses are REMOTE_ADDR only (NUM_PROXIES is 0):
a forwarded header a client writes never picks its allowance (gunicorn.conf.py decides the address)."""

from __future__ import annotations

import threading

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class _SettingsRate(SimpleRateThrottle):
    setting: str

    def get_rate(self):
        return getattr(settings, self.setting)


class SignupThrottle(_SettingsRate):
    scope = "signup"
    setting = "DTN_THROTTLE_SIGNUP"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class TokenThrottle(SignupThrottle):
    """Password-for-token exchanges per address: axes counts the failures, this the volume."""

    scope = "token"
    setting = "DTN_THROTTLE_TOKEN"


class AgentThrottle(_SettingsRate):
    """Every call of one container's agents, together.

    A container's first tenth of its rate in each window, in each server process, is counted in that process
    only; what goes past it is counted in the shared cache. An idle agent makes a few calls a minute, and a
    shared count of each would triple the queries of an idle claim, the call 2,000 agents make most
    (docs/performance.md); an agent in a loop is stopped all the same, within a tenth of the rate per process
    of the limit."""

    scope = "agent"
    setting = "DTN_THROTTLE_AGENT"
    _lock = threading.Lock()
    _window: int | None = None
    _local: dict = {}

    def allow_request(self, request, view):
        # A held claim tries again each time it is woken: one request, counted once.
        if getattr(request._request, "long_poll_attempts", 0):
            return True
        key = self.get_cache_key(request, view)
        if key is not None and self._count_locally(key) <= self.num_requests // 10:
            return True
        return super().allow_request(request, view)

    def _count_locally(self, key: str) -> int:
        window = int(self.timer() // self.duration)
        with self._lock:
            if AgentThrottle._window != window:
                AgentThrottle._window, AgentThrottle._local = window, {}
            count = AgentThrottle._local[key] = AgentThrottle._local.get(key, 0) + 1
        return count

    def get_cache_key(self, request, view):
        container = request.auth
        return self.cache_format % {"scope": self.scope, "ident": container.pk} if container is not None else None
