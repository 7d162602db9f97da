"""POST /register (and its twin POST /api/v1/containers, and the page form):
a signed-in person registers a container and gets its ID and agent token once."""

from __future__ import annotations

import hashlib
import hmac
import uuid

import pytest
from django.conf import settings
from django.forms.models import model_to_dict
from rest_framework.test import APIClient

from portal.containers.models import Container

AGENT_PREFIX = "dtn_agent_"


def register_json(client, **body):
    return client.post("/register", body, format="json")


def heartbeat_with(raw_token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_token}")
    return client.post("/api/agent/v1/heartbeat", {"agent_version": "0.1.0"}, format="json")


# --- With an API token ---------------------------------------------------------------------------


def test_it_registers_a_container(alice_api, alice):
    response = register_json(alice_api, name="lab-dtn-1", role="sender")
    assert response.status_code == 201
    body = response.json()
    container_id = uuid.UUID(body["container_id"])
    assert body["agent_token"].startswith(AGENT_PREFIX)
    assert body["name"] == "lab-dtn-1"
    assert body["role"] == "sender"
    assert body["online"] is False

    container = Container.objects.get(pk=container_id)
    assert container.owner == alice
    assert (container.name, container.role) == ("lab-dtn-1", "sender")
    assert container.last_seen_at is None


@pytest.mark.parametrize("role", ["sender", "receiver", "both"])
def test_it_accepts_each_role(alice_api, alice, role):
    response = register_json(alice_api, name=f"dtn-{role}", role=role)
    assert response.status_code == 201
    assert Container.objects.get(pk=response.json()["container_id"]).role == role


def test_the_agent_token_works_on_the_agent_api(alice_api):
    body = register_json(alice_api, name="lab-dtn-1", role="sender").json()
    response = heartbeat_with(body["agent_token"])
    assert response.status_code == 200
    assert response.json()["container_id"] == body["container_id"]
    container = Container.objects.get(pk=body["container_id"])
    assert container.last_seen_at is not None


def test_the_agent_token_is_stored_only_as_a_keyed_hash(alice_api):
    body = register_json(alice_api, name="lab-dtn-1", role="sender").json()
    raw = body["agent_token"]
    lookup, secret = raw[len(AGENT_PREFIX):].split("_", 1)
    container = Container.objects.get(pk=body["container_id"])

    stored = " ".join(str(value) for value in model_to_dict(container).values())
    assert raw not in stored
    assert secret not in stored
    assert container.token_lookup == lookup
    assert container.token_digest == hmac.new(settings.TOKEN_HMAC_KEY.encode(), secret.encode(),
                                              hashlib.sha256).hexdigest()
    assert container.token_digest != hashlib.sha256(secret.encode()).hexdigest()


def test_the_agent_token_is_shown_once(alice_api):
    body = register_json(alice_api, name="lab-dtn-1", role="sender").json()
    listing = alice_api.get("/api/v1/containers")
    detail = alice_api.get(f"/api/v1/containers/{body['container_id']}")
    for response in (listing, detail):
        assert response.status_code == 200
        assert body["agent_token"] not in response.content.decode()
        assert "agent_token" not in response.content.decode()


def test_the_api_twin_registers_too(alice_api, alice):
    response = alice_api.post("/api/v1/containers", {"name": "lab-dtn-1", "role": "receiver"}, format="json")
    assert response.status_code == 201
    assert response.json()["agent_token"].startswith(AGENT_PREFIX)
    assert alice.containers.get().role == "receiver"


def test_it_trims_the_name(alice_api, alice):
    response = register_json(alice_api, name="  lab-dtn-1  ", role="sender")
    assert response.status_code == 201
    assert alice.containers.get().name == "lab-dtn-1"


# --- Refusals change nothing -------------------------------------------------------------------------


def test_registering_the_same_name_twice_is_a_409_not_a_server_error(alice_api, alice):
    first = register_json(alice_api, name="lab-dtn-1", role="sender")
    assert first.status_code == 201
    before = Container.objects.count()

    second = register_json(alice_api, name="lab-dtn-1", role="receiver")
    assert second.status_code == 409
    body = second.json()
    assert body["field"] == "name"
    assert "lab-dtn-1" in body["error"]
    assert "agent_token" not in body
    assert Container.objects.count() == before
    assert alice.containers.get().role == "sender"


def test_two_people_may_use_the_same_name(alice_api, bob_api):
    assert register_json(alice_api, name="dtn", role="sender").status_code == 201
    assert register_json(bob_api, name="dtn", role="receiver").status_code == 201
    assert Container.objects.filter(name="dtn").count() == 2


@pytest.mark.parametrize("role", ["admin", "", "Sender", "SENDER"])
def test_it_refuses_a_bad_role_with_the_field(alice_api, role):
    response = register_json(alice_api, name="lab-dtn-1", role=role)
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == "role"
    assert body["error"]
    assert Container.objects.count() == 0


def test_it_refuses_a_missing_role(alice_api):
    response = register_json(alice_api, name="lab-dtn-1")
    assert response.status_code == 400
    assert response.json()["field"] == "role"
    assert Container.objects.count() == 0


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_it_refuses_a_bad_name_with_the_field(alice_api, name):
    response = register_json(alice_api, name=name, role="sender")
    assert response.status_code == 400
    assert response.json()["field"] == "name"
    assert Container.objects.count() == 0


def test_it_refuses_a_body_that_is_not_json(alice_api):
    response = alice_api.post("/register", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert set(response.json()) >= {"error", "field"}
    assert Container.objects.count() == 0


def test_registering_needs_a_signed_in_person(db, anon_api):
    response = register_json(anon_api, name="lab-dtn-1", role="sender")
    assert response.status_code == 401
    assert response.json()["field"] is None
    assert Container.objects.count() == 0


def test_an_agent_cannot_register_a_container(alice_agent, alice_sender):
    before = Container.objects.count()
    response = register_json(alice_agent, name="rogue", role="sender")
    assert response.status_code == 401
    assert Container.objects.count() == before


def test_register_only_takes_a_post(alice_api):
    assert alice_api.get("/register").status_code == 405
    assert Container.objects.count() == 0


# --- With a browser session ---------------------------------------------------------------------------


def test_a_session_registers_with_the_csrf_header(browser, alice):
    client = browser(alice)
    response = client.post("/register", {"name": "lab-dtn-1", "role": "both"}, content_type="application/json",
                           HTTP_X_CSRFTOKEN=client.csrf())
    assert response.status_code == 201
    assert response.json()["agent_token"].startswith(AGENT_PREFIX)
    assert alice.containers.get().role == "both"


def test_a_session_without_the_csrf_token_is_refused(browser, alice):
    client = browser(alice)
    response = client.post("/register", {"name": "lab-dtn-1", "role": "sender"}, content_type="application/json")
    assert response.status_code == 403
    assert Container.objects.count() == 0


# --- The page's form -----------------------------------------------------------------------------------


def test_the_page_registers_and_shows_the_token_once(browser, alice):
    client = browser(alice)
    response = client.post("/portal/containers/", {"name": "lab-dtn-1", "role": "receiver",
                                                   "csrfmiddlewaretoken": client.csrf()})
    assert response.status_code == 200
    container = alice.containers.get()
    assert container.role == "receiver"
    token = response.context["registered"]["token"]
    assert token.startswith(AGENT_PREFIX)
    page = response.content.decode()
    assert token in page
    assert str(container.id) in page
    assert Container.authenticate(token) == container

    again = client.get("/portal/containers/").content.decode()
    assert token not in again


def test_the_page_says_a_name_is_taken(browser, alice, alice_sender):
    client = browser(alice)
    response = client.post("/portal/containers/", {"name": alice_sender.name, "role": "sender",
                                                   "csrfmiddlewaretoken": client.csrf()})
    assert response.status_code == 400
    assert "already have a container named" in response.content.decode()
    assert alice.containers.count() == 1


def test_the_page_refuses_a_bad_role(browser, alice):
    client = browser(alice)
    response = client.post("/portal/containers/", {"name": "lab-dtn-1", "role": "admin",
                                                   "csrfmiddlewaretoken": client.csrf()})
    assert response.status_code == 400
    assert alice.containers.count() == 0


def test_the_page_refuses_a_post_without_the_csrf_token(browser, alice):
    response = browser(alice).post("/portal/containers/", {"name": "lab-dtn-1", "role": "sender"})
    assert response.status_code == 403
    assert alice.containers.count() == 0
