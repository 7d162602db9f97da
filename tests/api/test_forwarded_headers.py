"""X-Forwarded-For cannot dodge the sign-in lockout: the server, not Django, decides which address a request
comes from (portal/gunicorn.conf.py), so this runs against real gunicorn with uvicorn workers."""

from __future__ import annotations

import pytest
import requests

from tests.harness.portal import PortalServer

pytestmark = pytest.mark.e2e

PASSWORD = "a long enough passphrase"
LIMIT = 3


def token_login(server, password, **headers):
    return requests.post(f"{server.url}/api/v1/auth/token", json={"username": "alice", "password": password},
                         headers=headers, timeout=30)


def lock_out_alice(server):
    body = {"username": "alice", "email": "alice@example.org", "password": PASSWORD}
    assert requests.post(f"{server.url}/api/v1/signup", json=body, timeout=30).status_code == 201
    for _ in range(LIMIT - 1):
        assert token_login(server, "wrong").status_code == 401
    assert token_login(server, "wrong").status_code == 429


def test_a_forwarded_for_header_does_not_escape_the_lockout():
    with PortalServer(DTN_LOGIN_FAILURE_LIMIT=str(LIMIT), DTN_WEB_WORKERS="1") as server:
        lock_out_alice(server)
        for forged in ("203.0.113.9", "203.0.113.10, 127.0.0.1", "198.51.100.1"):
            response = token_login(server, PASSWORD, **{"X-Forwarded-For": forged})
            assert response.status_code == 429, forged
            assert response.json()["error"]


def test_behind_a_proxy_the_proxy_names_the_client():
    # 127.0.0.1 is the configured proxy here: the address it forwards is the one counted, so another client
    # behind the same proxy is not locked out with alice's attacker.
    with PortalServer(DTN_LOGIN_FAILURE_LIMIT=str(LIMIT), DTN_WEB_WORKERS="1", DTN_BEHIND_PROXY="true",
                      DTN_FORWARDED_ALLOW_IPS="127.0.0.1") as server:
        lock_out_alice(server)
        assert token_login(server, PASSWORD, **{"X-Forwarded-For": "203.0.113.9"}).status_code == 201


def test_behind_a_proxy_only_the_configured_proxy_is_believed():
    with PortalServer(DTN_LOGIN_FAILURE_LIMIT=str(LIMIT), DTN_WEB_WORKERS="1", DTN_BEHIND_PROXY="true",
                      DTN_FORWARDED_ALLOW_IPS="192.0.2.1") as server:
        lock_out_alice(server)
        assert token_login(server, PASSWORD, **{"X-Forwarded-For": "203.0.113.9"}).status_code == 429
