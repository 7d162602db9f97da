"""Every answer that can carry a secret shown once says `Cache-Control: no-store`: no browser or proxy keeps
a token, an agent token or a webhook signing secret."""

from __future__ import annotations

import pytest

from tests.portal.conftest import PASSWORD


def assert_no_store(response, status):
    assert response.status_code == status, response.content[:300]
    assert "no-store" in response["Cache-Control"]


def test_the_token_endpoint(anon_api, alice):
    response = anon_api.post("/api/v1/auth/token", {"username": "alice", "password": PASSWORD}, format="json")
    assert_no_store(response, 201)


def test_a_new_personal_token(alice_api):
    assert_no_store(alice_api.post("/api/v1/tokens", {"name": "laptop"}, format="json"), 201)


@pytest.mark.parametrize("path", ["/register", "/api/v1/containers"])
def test_a_registration(alice_api, path):
    assert_no_store(alice_api.post(path, {"name": "lab", "role": "sender"}, format="json"), 201)


def test_a_rotated_agent_token(alice_api, alice_sender):
    assert_no_store(alice_api.post(f"/api/v1/containers/{alice_sender.pk}/rotate-token"), 200)


def test_a_webhook_signing_secret(alice_api):
    assert_no_store(alice_api.post("/api/v1/notifications/webhook-secret"), 201)
    assert_no_store(alice_api.patch("/api/v1/notifications/settings", {"webhook_url": "https://hooks.example.org/x"},
                                    format="json"), 200)


def test_the_agents_grants(bob_receiver):
    from tests.portal.conftest import agent_client

    assert_no_store(agent_client(bob_receiver).get("/api/agent/v1/grants"), 200)


def test_the_tokens_page(browser, alice):
    client = browser(alice)
    assert_no_store(client.get("/accounts/tokens/"), 200)
    assert_no_store(client.post("/accounts/tokens/", {"name": "laptop", "csrfmiddlewaretoken": client.csrf()}), 200)


def test_the_registration_page(browser, alice):
    client = browser(alice)
    assert_no_store(client.post("/portal/containers/", {"name": "lab", "role": "sender",
                                                         "csrfmiddlewaretoken": client.csrf()}), 200)


def test_the_rotate_token_page(browser, alice, alice_sender):
    client = browser(alice)
    response = client.post(f"/portal/containers/{alice_sender.pk}/rotate-token",
                           {"csrfmiddlewaretoken": client.csrf()})
    assert_no_store(response, 200)
