from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.netcheck import services
from portal.netcheck.api.serializers import NetworkCheckSerializer, NewCheckSerializer
from portal.netcheck.models import NetworkCheck

LIST_LIMIT = 50


def owned_check(request, check_id) -> NetworkCheck:
    check = (NetworkCheck.objects.select_related("task").filter(owner=request.user, pk=check_id).first())
    if check is None:
        raise Http404
    return services.refresh(check)


class NetworkCheckListView(APIView):
    """Your latest network checks (asked or run with a transfer); POST asks for one."""

    @extend_schema(responses=NetworkCheckSerializer(many=True), operation_id="api_v1_network_checks_list")
    def get(self, request):
        checks = NetworkCheck.objects.select_related("task").filter(owner=request.user)[:LIST_LIMIT]
        return Response(NetworkCheckSerializer([services.refresh(c) for c in checks], many=True).data)

    @extend_schema(request=NewCheckSerializer, responses={201: NetworkCheckSerializer})
    def post(self, request):
        """The sender's agent checks the path to the receiver now, even while it runs a
        transfer; poll the check (GET) until its state is no longer `pending` (~15 s)."""
        serializer = NewCheckSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        check = services.start(request.user, data["sender"], data["receiver"],
                               total_bytes=data.get("total_bytes"), files=data.get("files"))
        return Response(NetworkCheckSerializer(check).data, status=status.HTTP_201_CREATED)


class NetworkCheckView(APIView):
    @extend_schema(responses=NetworkCheckSerializer)
    def get(self, request, check_id):
        return Response(NetworkCheckSerializer(owned_check(request, check_id)).data)
