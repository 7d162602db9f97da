from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.grants import services
from portal.lib.certificates import pem_download
from portal.grants.api.serializers import (
    GivenGrantSerializer,
    GrantListSerializer,
    GrantSerializer,
    NewGrantSerializer,
)


def _shown(grant, user):
    serializer = GivenGrantSerializer if grant.receiver.owner_id == user.pk else GrantSerializer
    return serializer(grant).data


class GrantListView(APIView):
    """Grants you gave (on your receivers) and grants you received; POST grants someone."""

    @extend_schema(responses=GrantListSerializer, operation_id="api_v1_grants_list")
    def get(self, request):
        return Response({
            "given": GivenGrantSerializer(services.given(request.user).select_related("receiver__owner"),
                                          many=True).data,
            "received": GrantSerializer(services.received(request.user).select_related("grantee", "receiver__owner"), many=True).data,
        })

    @extend_schema(request=NewGrantSerializer, responses={201: GivenGrantSerializer, 409: None})
    def post(self, request):
        serializer = NewGrantSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        grant = services.grant(request.user, data["grantee"], data["receiver"])
        return Response(GivenGrantSerializer(grant).data, status=status.HTTP_201_CREATED)


def visible_grant(request, grant_id):
    grant = (services.visible(request.user).select_related("receiver", "receiver__owner", "grantee")
             .filter(pk=grant_id).first())
    if grant is None:
        raise Http404
    return grant


class GrantView(APIView):
    @extend_schema(responses=GrantSerializer)
    def get(self, request, grant_id):
        return Response(_shown(visible_grant(request, grant_id), request.user))


class GrantCertificateView(APIView):
    """The certificate of the grant's receiver (PEM), as its senders pin it: for the grantee and the
    receiver's owner."""

    @extend_schema(responses={(200, "application/x-pem-file"): str})
    def get(self, request, grant_id):
        return pem_download(visible_grant(request, grant_id).receiver)


class RevokeGrantView(APIView):
    @extend_schema(request=None, responses=GivenGrantSerializer)
    def post(self, request, grant_id):
        """Revoke a grant you gave: its keys stop working and its queued sends fail
        (`grant_revoked`). Revoking again changes nothing."""
        grant = services.given(request.user).filter(pk=grant_id).first()
        if grant is None:
            raise Http404
        services.revoke(grant)
        return Response(GivenGrantSerializer(grant).data)
