"""Request rates: signing up and getting a token per address, the agents' protocol per container. A 429 is
JSON with a sentence and says when to come back; a forwarded header does not buy a new allowance."""

from __future__ import annotations

import pytest
from django.db import connection
from rest_framework.test import APIClient

from tests.portal.conftest import PASSWORD, agent_client
from tests.portal.test_errors import assert_error_shape


@pytest.fixture(autouse=True)
def small_rates(settings):
    settings.DTN_THROTTLE_SIGNUP = "3/hour"
    settings.DTN_THROTTLE_TOKEN = "3/minute"
    settings.DTN_THROTTLE_AGENT = "3/minute"


def signup(api, n, **extra):
    body = {"username": f"person{n}", "email": f"p{n}@example.org", "password": "a long enough passphrase"}
    return api.post("/api/v1/signup", body, format="json", **extra)


def test_signing_up_is_limited_per_address(db):
    api = APIClient()
    assert [signup(api, n).status_code for n in range(3)] == [201, 201, 201]
    refused = signup(api, 3)
    assert_error_shape(refused, 429)
    assert int(refused["Retry-After"]) > 0
    assert signup(api, 4, REMOTE_ADDR="198.51.100.7").status_code == 201


def test_a_forwarded_header_does_not_buy_a_new_allowance(db):
    api = APIClient()
    for n in range(3):
        signup(api, n, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}")
    assert signup(api, 3, HTTP_X_FORWARDED_FOR="203.0.113.99").status_code == 429


def test_getting_a_token_is_limited_per_address(anon_api, alice):
    body = {"username": "alice", "password": PASSWORD}
    codes = [anon_api.post("/api/v1/auth/token", body, format="json").status_code for _ in range(4)]
    assert codes == [201, 201, 201, 429]


def test_the_agents_calls_are_limited_per_container(alice_sender, charlie_sender):
    agent = agent_client(alice_sender)
    codes = [agent.post("/api/agent/v1/heartbeat", {}, format="json").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    assert_error_shape(agent.post("/api/agent/v1/heartbeat", {}, format="json"), 429)
    assert agent_client(charlie_sender).post("/api/agent/v1/heartbeat", {}, format="json").status_code == 200


def test_the_people_api_is_not_limited_by_these(alice_api):
    assert {alice_api.get("/api/v1/me").status_code for _ in range(5)} == {200}


def test_counts_are_kept_in_the_database_cache(db, settings):
    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.db.DatabaseCache"
    signup(APIClient(), 0)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {settings.CACHES['default']['LOCATION']}")
        assert cursor.fetchone()[0] >= 1


def test_an_agents_first_tenth_of_its_rate_costs_no_shared_count(settings, alice_sender):
    from django.test.utils import CaptureQueriesContext

    settings.DTN_THROTTLE_AGENT = "1200/minute"
    agent = agent_client(alice_sender)
    with CaptureQueriesContext(connection) as queries:
        assert agent.post("/api/agent/v1/heartbeat", {}, format="json").status_code == 200
    assert not [q for q in queries.captured_queries if settings.CACHES["default"]["LOCATION"] in q["sql"]]


def test_past_its_first_tenth_an_agent_is_counted_in_the_shared_cache(settings, alice_sender):
    settings.DTN_THROTTLE_AGENT = "20/minute"
    agent = agent_client(alice_sender)
    codes = [agent.post("/api/agent/v1/heartbeat", {}, format="json").status_code for _ in range(23)]
    # Two counted in this process only, then the rate itself in the shared count.
    assert codes == [200] * 22 + [429]
