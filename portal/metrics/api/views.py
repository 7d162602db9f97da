"""GET /metrics: the Prometheus text format, for a scraper from an allowed network or holding the token."""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from portal.lib.errors import json_error
from portal.metrics.collector import PortalCollector

REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(PortalCollector())


def _bearer(request) -> str:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _from_allowed_network(request) -> bool:
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in settings.DTN_METRICS_ALLOW_NETWORKS)


@csrf_exempt  # no session and no change: a POST is answered 405 below, not with the CSRF page
def metrics(request):
    if request.method not in ("GET", "HEAD"):
        response = json_error("metrics are read with GET", 405)
        response["Allow"] = "GET, HEAD"
        return response
    token = settings.DTN_METRICS_TOKEN
    given = _bearer(request)
    if given:
        # A wrong token is refused even from an allowed network: whoever sent it meant to use it.
        if not token or not hmac.compare_digest(given.encode(), token.encode()):
            return json_error("wrong metrics token", 401)
    elif not _from_allowed_network(request):
        return json_error("metrics are served to the networks in DTN_METRICS_ALLOW_IPS, or with "
                          "Authorization: Bearer and DTN_METRICS_TOKEN", 403)
    response = HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
