"""What drf-spectacular cannot infer: our bearer schemes, the error shape, and
the required fields of PATCH bodies that are not partial updates."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import serializers


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
        return {"type": "http", "scheme": "bearer", "bearerFormat": "dtn_pat_…",
                "description": "A personal API token from /accounts/tokens/ or POST /api/v1/auth/token."}


class AgentTokenScheme(OpenApiAuthenticationExtension):
    target_class = "portal.agentapi.auth.AgentTokenAuthentication"
    name = "agentToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "dtn_agent_…",
                "description": "A container's agent token, shown once at registration."}
