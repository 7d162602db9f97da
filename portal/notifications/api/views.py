from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.lib.errors import error_body
from portal.lib.schema import ErrorSerializer
from portal.lib.views import NeverCached
from portal.notifications import outbox, services, worker
from portal.notifications.api.serializers import (
    DeliverySerializer,
    NotificationSettingsSerializer,
    WebhookSecretSerializer,
)
from portal.notifications.models import NotificationSettings

class NotificationSettingsView(NeverCached, APIView):
    """Your notification settings. PUT and PATCH both change only the fields sent."""

    @extend_schema(responses=NotificationSettingsSerializer)
    def get(self, request):
        return Response(NotificationSettingsSerializer(NotificationSettings.of(request.user)).data)

    @extend_schema(request=NotificationSettingsSerializer,
                   responses={200: NotificationSettingsSerializer, 400: ErrorSerializer})
    def put(self, request):
        return self._change(request)

    @extend_schema(request=NotificationSettingsSerializer,
                   responses={200: NotificationSettingsSerializer, 400: ErrorSerializer})
    def patch(self, request):
        return self._change(request)

    def _change(self, request):
        serializer = NotificationSettingsSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        prefs, new_secret = services.update(request.user, serializer.validated_changes())
        if new_secret is not None:
            prefs.secret_shown_once = new_secret
        return Response(NotificationSettingsSerializer(prefs).data)


class WebhookSecretView(NeverCached, APIView):
    """Make a new webhook signing secret, replacing the old one at once. The answer is the only place it is shown."""

    @extend_schema(request=None, responses={201: WebhookSecretSerializer})
    def post(self, request):
        prefs, secret = services.rotate_secret(request.user)
        return Response({"webhook_secret": secret, "webhook_secret_created_at": prefs.webhook_secret_created_at},
                        status=status.HTTP_201_CREATED)


class TestNotificationView(APIView):
    """Queue a test delivery on each channel you have set up (mail, webhook)."""

    @extend_schema(request=None, responses={
        202: DeliverySerializer(many=True),
        400: OpenApiResponse(ErrorSerializer, description="No email address and no webhook URL to test.")})
    def post(self, request):
        deliveries = outbox.enqueue_test(request.user)
        if not deliveries:
            return Response(error_body("nothing to test: set an email address or a webhook URL first"),
                            status=status.HTTP_400_BAD_REQUEST)
        worker.wake()
        return Response(DeliverySerializer(deliveries, many=True).data, status=status.HTTP_202_ACCEPTED)


class DeliveryListView(generics.ListAPIView):
    """Your deliveries, newest first: what was sent, and what became of it."""

    serializer_class = DeliverySerializer

    def get_queryset(self):
        return self.request.user.deliveries.order_by("-created_at", "-id")
