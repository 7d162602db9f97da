"""Tell drf-spectacular how our two bearer schemes look in the OpenAPI document."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


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
