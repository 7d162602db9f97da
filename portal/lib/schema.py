"""What drf-spectacular cannot infer: our bearer schemes, the error shape, the
required fields of PATCH bodies that are not partial updates, and records
embedded across apps (portal/lib/embedded.py)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerFieldExtension
from rest_framework import serializers

from dtn_protocol.api import AGENT_TOKEN_PREFIX, PERSONAL_TOKEN_PREFIX
from portal.lib.embedded import serializer_for


class ErrorSerializer(serializers.Serializer):
    """Every 4xx answer of the API."""

    error = serializers.CharField(help_text="A sentence a person can act on.")
    field = serializers.CharField(allow_null=True, help_text="The input it is about, if any.")
    fields = serializers.DictField(child=serializers.CharField(), required=False,
                                   help_text="With several invalid inputs: each one's sentence.")


# Why each error status can answer an operation (lib/errors.py gives them all one body); which ones apply is
# read off the operation (document_errors).
ERROR_REASONS = {
    "400": "The request is malformed or refused: `field` names the input.",
    "401": "No credentials, or credentials this API does not take.",
    "403": "Not allowed to do this.",
    "404": "No such object, or not yours.",
    "409": "The object's state does not allow this now.",
    "413": "The request body is larger than DTN_MAX_REQUEST_BYTES.",
    "415": "The request body is not JSON.",
    "429": "Too many requests (or failed sign-ins): the Retry-After header says when to come back.",
}
# Answered in a component's `required`, though some answers leave them out.
OPTIONAL_IN_ANSWERS = {"NotificationSettings": ["webhook_secret"]}


# PATCH bodies that are whole reports, not partial updates: spectacular marks every
# field of a PATCH body optional, which would document the protocol wrongly.
FULL_PATCH_BODIES = {"PatchedReportRequest": "portal.agentapi.api.serializers.ReportSerializer"}


def document_errors(result, generator, request, public):
    """Every error an operation can answer, documented with the one error body: statuses that follow from the
    operation itself (a body, a path parameter, credentials, a throttle), besides those its view declares."""
    throttled = {(path, method.lower()) for path, _, method, view in generator.endpoints
                 if getattr(view.cls, "throttle_classes", None)}
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            wanted = {"400"}
            if any(requirement for requirement in operation.get("security", [])):
                wanted |= {"401", "403"}
            if "{" in path:
                wanted.add("404")
            if "requestBody" in operation:
                wanted |= {"413", "415"}
            if (path, method) in throttled:
                wanted.add("429")
            responses = operation.setdefault("responses", {})
            for status in sorted(wanted | {code for code in responses if code in ERROR_REASONS}):
                if not responses.get(status, {}).get("content"):
                    responses[status] = {"content": error, "description": ERROR_REASONS[status]}
    schemas = result.get("components", {}).get("schemas", {})
    for component, names in OPTIONAL_IN_ANSWERS.items():
        if component in schemas:
            schemas[component]["required"] = [n for n in schemas[component].get("required", []) if n not in names]
    return result


def require_full_patch_bodies(result, generator, request, public):
    from django.utils.module_loading import import_string

    schemas = result.get("components", {}).get("schemas", {})
    for component, path in FULL_PATCH_BODIES.items():
        if component in schemas:
            fields = import_string(path)().fields
            schemas[component]["required"] = [name for name, field in fields.items() if field.required]
    return result


class PersonalTokenScheme(OpenApiAuthenticationExtension):
    target_class = "portal.accounts.auth.PersonalTokenAuthentication"
    name = "personalToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": f"{PERSONAL_TOKEN_PREFIX}…",
                "description": "A personal API token from /accounts/tokens/ or POST /api/v1/auth/token."}


class AgentTokenScheme(OpenApiAuthenticationExtension):
    target_class = "portal.agentapi.auth.AgentTokenAuthentication"
    name = "agentToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": f"{AGENT_TOKEN_PREFIX}…",
                "description": "A container's agent token, shown once at registration."}


class BoundedJSONFieldSchema(OpenApiSerializerFieldExtension):
    """A bounded JSON value: an object where the field takes only objects, else any JSON value; null only
    where the field allows it."""

    target_class = "portal.lib.parsers.BoundedJSONField"

    def map_serializer_field(self, auto_schema, direction):
        schema = {"type": "object", "additionalProperties": {}} if self.target.object_only else {}
        if self.target.allow_null:
            schema["nullable"] = True
        return schema


class EmbeddedField(OpenApiSerializerFieldExtension):
    """An Embedded field is documented as the lent serializer's component, as a nested serializer is."""

    target_class = "portal.lib.embedded.Embedded"

    def map_serializer_field(self, auto_schema, direction):
        return auto_schema.resolve_serializer(serializer_for(self.target.record), direction).ref
