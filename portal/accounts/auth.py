from rest_framework import authentication, exceptions

from portal.accounts.models import PersonalToken
from portal.lib.tokens import bearer


class PersonalTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer dtn_pat_…` for the people's API and the CLI.

    Agent tokens are not accepted here: a container's token cannot act as
    its owner."""

    def authenticate(self, request):
        raw = bearer(request.META)
        if not raw:
            return None
        # No shortcut for a wrong prefix: every bad token costs one HMAC.
        token = PersonalToken.authenticate(raw)
        if token is None:
            raise exceptions.AuthenticationFailed("invalid API token")
        return token.user, token

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
