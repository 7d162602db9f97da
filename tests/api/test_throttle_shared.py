"""Throttle counts are shared by every server process: two workers, one allowance (the database cache, made
by the migrations the test server runs, with no other step)."""

from __future__ import annotations

import pytest
import requests

from tests.harness.portal import PortalServer

pytestmark = pytest.mark.e2e

RATE = 4


def test_two_workers_share_one_allowance():
    with PortalServer(DTN_WEB_WORKERS="2", DTN_THROTTLE_SIGNUP=f"{RATE}/hour") as server:
        codes = []
        for n in range(3 * RATE):
            # A new connection each time, so the requests spread over both workers.
            body = {"username": f"person{n}", "email": f"p{n}@example.org", "password": "a long enough passphrase"}
            codes.append(requests.post(f"{server.url}/api/v1/signup", json=body, timeout=30,
                                       headers={"Connection": "close"}).status_code)
        assert codes.count(201) == RATE
        assert set(codes) == {201, 429}
