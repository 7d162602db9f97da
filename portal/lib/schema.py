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


# PATCH bodies that are whole reports, not partial updates: spectacular marks every
# field of a PATCH body optional, which would document the protocol wrongly.
FULL_PATCH_BODIES = {"PatchedReportRequest": "portal.agentapi.api.serializers.ReportSerializer"}


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


class EmbeddedField(OpenApiSerializerFieldExtension):
    """An Embedded field is documented as the lent serializer's component, as a nested serializer is."""

    target_class = "portal.lib.embedded.Embedded"

    def map_serializer_field(self, auto_schema, direction):
        return auto_schema.resolve_serializer(serializer_for(self.target.record), direction).ref
