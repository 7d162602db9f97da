"""The OpenAPI document covers every API route, and its Swagger UI is served
from local assets (drf-spectacular-sidecar), never a CDN."""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.generators import SchemaGenerator

EXCLUDED = {"/api/schema/", "/api/docs/"}
HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


def _pattern_text(pattern) -> str:
    route = getattr(pattern, "_route", None)
    if route is not None:
        return str(route)
    return pattern.regex.pattern.lstrip("^").rstrip("$").replace("\\Z", "")


def all_routes(resolver=None, prefix=""):
    """(path, callback) for every URL pattern, walking included resolvers."""
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        text = prefix + _pattern_text(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from all_routes(entry, text)
        elif isinstance(entry, URLPattern):
            yield "/" + text, entry.callback


def openapi_path(route: str) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)


def view_methods(callback) -> set[str]:
    cls = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    assert cls is not None, f"{callback} is not a class-based view"
    return {m for m in cls.http_method_names if m in HTTP_METHODS and hasattr(cls, m)}


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def api_routes():
    return [(openapi_path(route), callback) for route, callback in all_routes()
            if route.startswith("/api/") and route not in EXCLUDED]


def test_the_route_walk_finds_the_api():
    paths = {path for path, _ in api_routes()}
    # Guard against a walk that finds nothing and so checks nothing.
    assert {"/api/v1/containers", "/api/agent/v1/commands/next", "/api/agent/v1/commands/{command_id}",
            "/api/v1/auth/token", "/api/v1/tokens/{token_id}"} <= paths


def test_every_api_route_is_in_the_schema(schema):
    missing = sorted(path for path, _ in api_routes() if path not in schema["paths"])
    assert missing == []


def test_every_method_of_every_api_route_is_in_the_schema(schema):
    missing = []
    for path, callback in api_routes():
        documented = set(schema["paths"].get(path, {})) & HTTP_METHODS
        for method in sorted(view_methods(callback) - documented):
            missing.append(f"{method.upper()} {path}")
    assert missing == []


def test_register_is_in_the_schema_too(schema):
    assert "post" in schema["paths"]["/register"]


def test_the_schema_names_both_bearer_schemes(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["personalToken"]["scheme"] == "bearer"
    assert schemes["agentToken"]["scheme"] == "bearer"
    heartbeat = schema["paths"]["/api/agent/v1/heartbeat"]["post"]
    assert heartbeat["security"] == [{"agentToken": []}]


def test_the_schema_is_served_as_json(client, db):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    body = response.json()
    assert body["openapi"].startswith("3.")
    assert body["info"]["title"] == "DTN-in-a-Box API"
    assert "/api/v1/containers" in body["paths"]


CDN_HINTS = ("cdn.", "jsdelivr", "unpkg", "cdnjs", "googleapis", "cloudflare")


def test_the_swagger_ui_loads_without_a_cdn(client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    lowered = html.lower()
    assert [hint for hint in CDN_HINTS if hint in lowered] == []
    external = re.findall(r'(?:src|href)="(https?:)?//[^"]+"', html)
    assert external == []


def test_the_swagger_ui_assets_are_served_locally(client, db):
    html = client.get("/api/docs/").content.decode()
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    assert any(asset.endswith("swagger-ui.css") for asset in assets)
    for asset in assets:
        response = client.get(asset)
        assert (asset, response.status_code) == (asset, 200)


# --- The schema as the API answers (issue 21) -------------------------------------------------------------


def _response_schema(schema, path, method, status):
    content = schema["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]
    return schema["components"]["schemas"][content["$ref"].rsplit("/", 1)[1]]


@pytest.mark.parametrize("path", ["/api/v1/transfers", "/api/v1/containers", "/api/v1/tokens",
                                  "/api/v1/network-checks", "/api/v1/notifications/deliveries",
                                  "/api/v1/containers/{container_id}/commands",
                                  "/api/v1/transfers/{transfer_id}/events"])
def test_every_list_is_documented_as_the_one_pagination(schema, path):
    page = _response_schema(schema, path, "get", "200")
    assert {"count", "next", "previous", "results"} <= set(page["properties"])
    names = {parameter["name"] for parameter in schema["paths"][path]["get"]["parameters"]}
    assert {"limit", "offset"} <= names


def test_an_answer_that_leaves_out_the_webhook_secret_is_not_told_to_carry_it(schema):
    settings_answer = _response_schema(schema, "/api/v1/notifications/settings", "get", "200")
    assert "webhook_secret" in settings_answer["properties"]
    assert "webhook_secret" not in settings_answer["required"]


def test_every_operation_documents_its_errors_with_the_error_body(schema):
    undocumented = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            wanted = {"400"} | ({"404"} if "{" in path else set()) | (
                {"413", "415"} if "requestBody" in operation else set())
            for status in sorted(wanted):
                ref = responses.get(status, {}).get("content", {}).get("application/json", {}).get("schema", {})
                if ref.get("$ref") != "#/components/schemas/Error":
                    undocumented.append(f"{method.upper()} {path} {status}")
    assert undocumented == []


def test_throttled_operations_document_429(schema):
    for path, method in [("/api/v1/signup", "post"), ("/api/v1/auth/token", "post"),
                         ("/api/agent/v1/heartbeat", "post"), ("/api/agent/v1/commands/next", "post")]:
        assert "429" in schema["paths"][path][method]["responses"], path
