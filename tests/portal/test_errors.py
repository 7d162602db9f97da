"""Every API error is JSON `{"error": "<sentence>", "field": <name or null>}`
with a 4xx status (or 500 for a bug), including 404s on unknown /api/ paths."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from portal.accounts.api.views import MeView


def assert_error_shape(response, status, field=None):
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) - {"fields"} == {"error", "field"}
    assert isinstance(body["error"], str) and body["error"]
    assert body["field"] == field
    return body


@pytest.mark.parametrize("path", ["/api/nope", "/api/v1/nope", "/api/v2/containers", "/api/agent/v1/nope",
                                  "/api/v1/containers/not-a-uuid", "/register/extra"])
def test_an_unknown_api_path_is_a_json_404(db, alice_api, path):
    body = assert_error_shape(alice_api.get(path), 404)
    assert body["error"] == "not found"


def test_an_unknown_api_path_is_a_json_404_for_anyone(db, anon_api):
    assert_error_shape(anon_api.post("/api/v1/nope", {}, format="json"), 404)


def test_an_unknown_page_is_not_json(client, db):
    response = client.get("/portal/nope")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


def test_a_missing_object_is_a_json_404(alice_api):
    assert_error_shape(alice_api.get("/api/v1/containers/00000000-0000-0000-0000-000000000000"), 404)


def test_a_validation_error_names_the_field(alice_api):
    body = assert_error_shape(alice_api.post("/register", {"name": "x", "role": "admin"}, format="json"), 400,
                              field="role")
    assert body["error"].startswith("role: ")


def test_several_invalid_fields_are_all_listed(alice_api):
    body = assert_error_shape(alice_api.post("/register", {}, format="json"), 400, field="name")
    assert set(body["fields"]) == {"name", "role"}


def test_malformed_json_is_a_400_without_a_field(alice_api):
    assert_error_shape(alice_api.post("/register", "{", content_type="application/json"), 400)


def test_an_unsupported_content_type_is_a_415(alice_api):
    assert_error_shape(alice_api.post("/register", "name=x", content_type="text/plain"), 415)


def test_a_missing_token_is_a_json_401(db, anon_api):
    assert_error_shape(anon_api.get("/api/v1/containers"), 401)


def test_a_bad_agent_token_is_a_json_401(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer dtn_agent_nope")
    body = assert_error_shape(client.post("/api/agent/v1/heartbeat", {}, format="json"), 401)
    assert body["error"] == "invalid agent token"


def test_a_missing_csrf_token_is_a_json_403(alice):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(alice)
    body = assert_error_shape(client.post("/api/v1/tokens", {"name": "x"}, format="json"), 403)
    assert "CSRF" in body["error"]


def test_a_wrong_method_is_a_json_405(alice_api):
    assert_error_shape(alice_api.get("/register"), 405)
    assert_error_shape(alice_api.put("/api/v1/containers", {}, format="json"), 405)


def test_a_conflict_is_a_json_409(alice_api, alice_sender):
    assert_error_shape(alice_api.post("/register", {"name": alice_sender.name, "role": "sender"}, format="json"),
                       409, field="name")


def test_a_bug_in_an_api_view_is_a_json_500(monkeypatch, alice):
    def broken(self):
        raise RuntimeError("a bug")

    monkeypatch.setattr(MeView, "get_object", broken)
    client = Client(raise_request_exception=False)
    client.force_login(alice)
    response = client.get("/api/v1/me")
    assert response.status_code == 500
    assert response.json() == {"error": "internal error; it has been logged", "field": None}
    assert "a bug" not in response.content.decode()


# --- Refusals: one base, answered in one place -------------------------------------------------


def test_a_refusal_is_answered_with_its_field_and_its_kinds_status():
    from portal.containers.services import NameTaken
    from portal.lib.errors import Refused, exception_handler

    response = exception_handler(Refused("label", "too long"), {})
    assert (response.status_code, response.data) == (400, {"error": "too long", "field": "label"})
    assert exception_handler(NameTaken("name", "taken"), {}).status_code == 409


def test_one_refusal_may_answer_otherwise_than_its_kind():
    from portal.grants.services import GrantRefused
    from portal.lib.errors import exception_handler

    assert exception_handler(GrantRefused("grantee", "no such user"), {}).status_code == 400
    assert exception_handler(GrantRefused("grantee", "granted already", status=409), {}).status_code == 409


def test_every_refusal_of_the_portal_is_a_refused():
    from portal.containers.services import NameTaken
    from portal.containers.tasks import AlreadyAnswered, TaskRefused
    from portal.grants.services import GrantRefused
    from portal.lib.errors import Refused
    from portal.transfers.queue import IllegalTransition, NotLeaseHolder, QueueError
    from portal.transfers.services import SendRefused

    kinds = (NameTaken, TaskRefused, AlreadyAnswered, GrantRefused, SendRefused, QueueError, IllegalTransition,
             NotLeaseHolder)
    assert all(issubclass(kind, Refused) for kind in kinds)
    conflicts = (QueueError, IllegalTransition, NotLeaseHolder, NameTaken, AlreadyAnswered)
    assert {kind.status for kind in conflicts} == {409}


def test_a_command_reported_by_an_agent_that_lost_its_lease_is_a_409_naming_the_state(alice_agent, alice_sender,
                                                                                          queued):
    from portal.transfers import queue

    command = queued()
    queue.claim_next(alice_sender, "inst-1")
    response = alice_agent.patch(f"/api/agent/v1/commands/{command.id}", {"instance_id": "inst-2", "state": "running"},
                                 format="json")
    body = assert_error_shape(response, 409, "state")
    assert "does not hold the command's lease" in body["error"]
