"""The closed list of failure reasons: defined once in dtn_protocol.failures, and the
same in the portal's model, the report serializer, the heartbeat reply and the
OpenAPI schema."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator

from dtn_protocol.failures import FailureReason
from portal.agentapi.api.serializers import ReportSerializer
from portal.transfers.models import Command

REQUIRED = [
    "auth_failed", "receiver_unreachable", "certificate_mismatch", "receiver_full", "network_no_go",
    "source_missing", "source_outside_root", "checksum_mismatch", "rclone_error", "lease_expired",
    "canceled_by_user", "grant_revoked",
]
PROTOCOL = [reason.value for reason in FailureReason]


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def test_the_protocol_has_every_required_reason():
    missing = [reason for reason in REQUIRED if reason not in PROTOCOL]
    assert missing == []
    assert len(PROTOCOL) == len(set(PROTOCOL))


def test_the_model_choices_are_the_protocols_reasons():
    choices = [value for value, _ in Command._meta.get_field("reason").choices]
    assert choices == PROTOCOL


def test_the_report_serializer_accepts_exactly_the_protocols_reasons():
    assert list(ReportSerializer().fields["reason"].choices) == PROTOCOL


def test_the_schemas_failure_reason_enum_is_the_protocols_reasons(schema):
    assert schema["components"]["schemas"]["FailureReasonEnum"]["enum"] == PROTOCOL


def test_every_enum_in_the_schema_that_lists_reasons_lists_them_all(schema):
    """A second copy of the list (e.g. a serializer's own enum) must not drift."""
    reason_enums = {name: component["enum"] for name, component in schema["components"]["schemas"].items()
                    if set(component.get("enum", [])) & set(PROTOCOL)}
    assert "FailureReasonEnum" in reason_enums
    assert {name: values for name, values in reason_enums.items() if values != PROTOCOL} == {}


def test_the_served_schema_has_the_same_enum(client, db):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    assert response.json()["components"]["schemas"]["FailureReasonEnum"]["enum"] == PROTOCOL


def test_the_heartbeat_tells_agents_the_same_list(alice_agent):
    response = alice_agent.post("/api/agent/v1/heartbeat", {}, format="json")
    assert response.json()["failure_reasons"] == PROTOCOL


@pytest.mark.parametrize("reason", PROTOCOL)
def test_an_agent_can_fail_a_command_with_each_reason(alice_agent, alice_sender, queued, reason):
    from portal.transfers import queue

    command = queued()
    queue.claim_next(alice_sender, "inst-1")
    response = alice_agent.patch(f"/api/agent/v1/commands/{command.id}",
                                 {"instance_id": "inst-1", "state": "failed", "reason": reason}, format="json")
    assert response.status_code == 200
    command.refresh_from_db()
    assert command.state == "failed"
    assert command.reason == reason
