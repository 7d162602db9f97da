from rest_framework import authentication, exceptions, permissions

from portal.containers.models import Container
from portal.lib.tokens import bearer


class AgentIdentity:
    """request.user for an agent: authenticated, but nobody's person account."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False

    def __init__(self, container: Container):
        self.container = container
        self.pk = None

    def __str__(self):
        return f"agent of {self.container.pk}"


class AgentTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer dtn_agent_…`. One answer for every bad token, so
    neither a wrong prefix nor an unknown container can be told apart."""

    def authenticate(self, request):
        raw = bearer(request.META)
        # No shortcut for a wrong prefix or no token: every bad token costs one HMAC.
        container = Container.authenticate(raw)
        if container is None:
            raise exceptions.AuthenticationFailed("invalid agent token")
        return AgentIdentity(container), container

    def authenticate_header(self, request):
        return 'Bearer realm="agent"'


class IsAgent(permissions.BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.auth, Container)
