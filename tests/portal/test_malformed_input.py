"""Bad input is a JSON 4xx with a sentence, never a 500: bodies nested too deep, numbers out of any column's
range, JSON values larger than their field keeps, form bodies on the agents' JSON protocol, missing objects."""

from __future__ import annotations

import json

import pytest
from rest_framework import serializers

from portal.lib.parsers import MAX_DEPTH, depth_exceeds
from portal.containers.models import Container
from tests.portal.test_errors import assert_error_shape

HEARTBEAT = "/api/agent/v1/heartbeat"


def nested(depth: int):
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("path", ["/api/v1/auth/token", "/api/v1/signup"])
@pytest.mark.parametrize("depth", [5000, MAX_DEPTH + 1])
def test_a_deeply_nested_body_is_a_400_before_any_login(db, anon_api, path, depth):
    body = '{"username": ' + nested(depth) + ', "password": "x"}'
    response = anon_api.post(path, body, content_type="application/json")
    body = assert_error_shape(response, 400)
    assert "nested more than" in body["error"]


def test_a_deeply_nested_body_is_a_400_for_agents_too(alice_agent):
    response = alice_agent.post(HEARTBEAT, '{"health": ' + nested(5000) + "}", content_type="application/json")
    assert_error_shape(response, 400)


def test_the_depth_check_counts_objects_and_lists():
    value = {"a": [{"b": [1]}]}
    assert not depth_exceeds(value, 4)
    assert depth_exceeds(value, 3)
    assert not depth_exceeds("text", 0)


def test_a_heartbeat_number_past_any_column_is_a_400(alice_agent, alice_sender):
    response = alice_agent.post(HEARTBEAT, {"disk_free_bytes": 2**70}, format="json")
    assert_error_shape(response, 400, field="disk_free_bytes")
    assert alice_agent.post(HEARTBEAT, {"disk_free_bytes": 2**63 - 1}, format="json").status_code == 200


def test_a_form_body_on_the_agents_protocol_is_a_415(alice_agent, alice_sender):
    response = alice_agent.post(HEARTBEAT, "health=null", content_type="application/x-www-form-urlencoded")
    assert_error_shape(response, 415)
    alice_sender.refresh_from_db()
    assert alice_sender.health == {}


@pytest.mark.parametrize("health", [None, [], "ok", 5])
def test_a_heartbeats_health_must_be_an_object(alice_agent, health):
    assert_error_shape(alice_agent.post(HEARTBEAT, {"health": health}, format="json"), 400, field="health")


def test_a_heartbeats_health_is_bounded(alice_agent, alice_sender):
    from portal.agentapi.api.serializers import MAX_HEALTH_BYTES

    response = alice_agent.post(HEARTBEAT, {"health": {"note": "x" * MAX_HEALTH_BYTES}}, format="json")
    assert_error_shape(response, 400, field="health")
    assert alice_agent.post(HEARTBEAT, {"health": {"note": "fine"}}, format="json").status_code == 200
    assert Container.objects.get(pk=alice_sender.pk).health == {"note": "fine"}


def test_a_reports_extra_values_are_bounded(alice_agent, alice_sender, queued, agent_threads_db):
    from portal.transfers import queue
    from portal.transfers.progress import MAX_EXTRAS_BYTES

    command = queued()
    queue.claim_next(alice_sender, "inst-1")
    body = {"instance_id": "inst-1", "state": "running", "progress": {"mine": "x" * MAX_EXTRAS_BYTES}}
    response = alice_agent.patch(f"/api/agent/v1/commands/{command.pk}", body, format="json")
    assert_error_shape(response, 400, field="progress")


def test_a_task_answers_result_is_bounded(alice_agent, alice_sender):
    from portal.agentapi.api.serializers import MAX_TASK_RESULT_BYTES
    from portal.containers import tasks

    task = tasks.ask(alice_sender, "list_send_folder", {})
    body = {"instance_id": "inst-1", "ok": True, "result": {"entries": "x" * MAX_TASK_RESULT_BYTES}}
    response = alice_agent.post(f"/api/agent/v1/tasks/{task.pk}", body, format="json")
    assert_error_shape(response, 400, field="result")


@pytest.mark.parametrize("path", [
    "/api/v1/grants/00000000-0000-0000-0000-000000000000",
    "/api/v1/network-checks/00000000-0000-0000-0000-000000000000",
    "/api/v1/containers/00000000-0000-0000-0000-000000000000",
    "/api/v1/tokens/99999999999999999999999",
    "/api/v1/transfers/00000000-0000-0000-0000-000000000000/events",
])
def test_every_missing_object_says_so_in_a_sentence(alice_api, path):
    assert assert_error_shape(alice_api.get(path), 404)["error"] == "not found"


def test_a_page_past_the_end_is_empty(alice_api):
    response = alice_api.get("/api/v1/transfers", {"offset": 10**9, "limit": 3})
    assert response.status_code == 200
    assert response.json()["results"] == []


@pytest.mark.parametrize("name, value", [("offset", "-1"), ("offset", str(2**80)), ("offset", "x"),
                                         ("limit", "0"), ("limit", "501"), ("limit", "1.5")])
def test_a_page_out_of_range_is_a_400_naming_it(alice_api, name, value):
    assert_error_shape(alice_api.get("/api/v1/containers", {name: value}), 400, field=name)


def test_a_form_body_on_the_api_is_a_415(db, anon_api):
    body = "username=alice&password=x"
    assert_error_shape(anon_api.post("/api/v1/auth/token", body, content_type="application/x-www-form-urlencoded"),
                       415)


def test_a_host_not_allowed_is_a_json_400(db, anon_api):
    assert_error_shape(anon_api.get("/api/v1/me", HTTP_HOST="evil.example.org"), 400)


def api_serializers():
    from django.urls import get_resolver

    from tests.portal.test_openapi import all_routes

    seen = set()
    for route, callback in all_routes(get_resolver()):
        cls = getattr(callback, "cls", None)
        if cls is None or not route.startswith(("/api/", "/register")):
            continue
        for attr in vars(__import__(cls.__module__, fromlist=["x"])).values():
            if isinstance(attr, type) and issubclass(attr, serializers.Serializer) and attr not in seen:
                seen.add(attr)
                yield attr
        serializer_module = cls.__module__.replace(".views", ".serializers")
        try:
            module = __import__(serializer_module, fromlist=["x"])
        except ImportError:
            continue
        for attr in vars(module).values():
            if isinstance(attr, type) and issubclass(attr, serializers.Serializer) and attr not in seen:
                seen.add(attr)
                yield attr


def test_every_integer_people_and_agents_send_has_a_range(db):
    unbounded = []
    for serializer_class in api_serializers():
        if "Reply" in serializer_class.__name__:
            continue  # answers only: nothing is parsed with them
        try:
            fields = serializer_class().fields
        except Exception:  # a serializer that needs context to build its fields sends nothing we parse
            continue
        for name, field in fields.items():
            if isinstance(field, serializers.IntegerField) and not field.read_only:
                if field.max_value is None or field.min_value is None:
                    unbounded.append(f"{serializer_class.__name__}.{name}")
    assert unbounded == []


@pytest.mark.parametrize("wait", ["x", "-1", "nan", "inf"])
def test_a_claims_wait_must_be_seconds(alice_agent, wait):
    response = alice_agent.post(f"/api/agent/v1/commands/next?wait={wait}", {"instance_id": "i1"}, format="json")
    assert_error_shape(response, 400, field="wait")


def test_a_bad_wait_from_someone_unknown_is_still_a_401(db):
    from rest_framework.test import APIClient

    response = APIClient().post("/api/agent/v1/tasks/next?wait=x", {"instance_id": "i1"}, format="json")
    assert_error_shape(response, 401)
