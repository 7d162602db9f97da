"""`python -m portal.lib.healthcheck`: the portal container's health check.

GET /healthz (the process answers and the database does) from this container's own server: the port
of `DTN_BIND` on loopback, over HTTPS when `DTN_TLS_CERT` is set, with the Host header of the first
name in `DTN_ALLOWED_HOSTS` (Django refuses other names). The certificate is not verified: this is
our own process on loopback, and the check must pass with a self-signed certificate too. Standard
library only, so a check costs a few milliseconds and no Django start-up. Exit status 0 healthy, 1 not.
"""

from __future__ import annotations

import http.client
import os
import ssl
import sys

TIMEOUT = 5.0


def target(environ) -> tuple[str, int]:
    bind = environ.get("DTN_BIND") or "127.0.0.1:8000"
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "*"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return host, int(port)


def host_header(environ) -> str:
    for item in (environ.get("DTN_ALLOWED_HOSTS") or "").split(","):
        item = item.strip().lstrip(".")
        if item and item != "*":
            return item
    return "localhost"


def check(environ=None) -> tuple[bool, str]:
    environ = os.environ if environ is None else environ
    try:
        host, port = target(environ)
    except ValueError:
        return False, f"DTN_BIND={environ.get('DTN_BIND')!r} has no port"
    tls = bool(environ.get("DTN_TLS_CERT"))
    headers = {"Host": host_header(environ)}
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection = http.client.HTTPSConnection(host, port, timeout=TIMEOUT, context=context)
    else:
        # TLS ends at a proxy: say what the proxy would, so DTN_SECURE's redirect does not answer instead.
        headers["X-Forwarded-Proto"] = "https"
        connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    try:
        connection.request("GET", "/healthz", headers=headers)
        response = connection.getresponse()
        response.read()
    except (OSError, http.client.HTTPException) as exc:
        return False, f"{'https' if tls else 'http'}://{host}:{port}/healthz: {exc}"
    finally:
        connection.close()
    if response.status != 200:
        return False, f"/healthz answered {response.status}"
    return True, "/healthz answered 200"


def main() -> int:
    ok, why = check()
    print(f"{'healthy' if ok else 'unhealthy'}: {why}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
