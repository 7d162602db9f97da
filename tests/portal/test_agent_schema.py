"""The OpenAPI document describes the agent protocol as it behaves."""

import pytest
from drf_spectacular.generators import SchemaGenerator


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def test_a_report_body_requires_the_instance_and_the_state(schema):
    operation = schema["paths"]["/api/agent/v1/commands/{command_id}"]["patch"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    component = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(component["required"]) == {"instance_id", "state"}


def test_a_refused_report_documents_the_error_body(schema):
    operation = schema["paths"]["/api/agent/v1/commands/{command_id}"]["patch"]
    ref = operation["responses"]["409"]["content"]["application/json"]["schema"]["$ref"]
    component = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(component["required"]) == {"error", "field"}
    assert set(component["properties"]) == {"error", "field", "fields"}


def test_the_reported_reason_uses_the_one_failure_reason_enum(schema):
    names = set(schema["components"]["schemas"])
    assert "FailureReasonEnum" in names
    assert not [name for name in names if name.startswith("ReportReason")]
