from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.netcheck import services
from portal.netcheck.api.serializers import NetworkCheckSerializer, NewCheckSerializer
from portal.netcheck.models import NetworkCheck

def owned_check(request, check_id) -> NetworkCheck:
    check = (NetworkCheck.objects.select_related("task").filter(owner=request.user, pk=check_id).first())
    if check is None:
        raise Http404
    return services.refresh(check)


class NetworkCheckListView(generics.ListAPIView):
    """Your network checks, newest first (asked, or run with a transfer); POST asks for one."""

    serializer_class = NetworkCheckSerializer

    def get_queryset(self):
        return NetworkCheck.objects.select_related("task").filter(owner=self.request.user).order_by(
            "-created_at", "-id")

    def paginate_queryset(self, queryset):
        # A pending check whose agent ran out of time is shown expired: only the page's rows are looked at.
        return [services.refresh(check) for check in super().paginate_queryset(queryset)]

    @extend_schema(operation_id="api_v1_network_checks_list")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

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
