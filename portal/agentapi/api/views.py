from __future__ import annotations

import time

from django.conf import settings
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from agent.protocol import FailureReason
from portal.agentapi.api.serializers import (
    AgentCommandSerializer,
    ClaimSerializer,
    HeartbeatReplySerializer,
    HeartbeatSerializer,
    ReportReplySerializer,
    ReportSerializer,
)
from portal.agentapi.auth import AgentTokenAuthentication, IsAgent
from portal.agentapi.waiters import waiters
from portal.containers.models import Container
from portal.lib.errors import error_body
from portal.transfers import queue
from portal.transfers.models import Command


class AgentAPIView(APIView):
    authentication_classes = [AgentTokenAuthentication]
    permission_classes = [IsAgent]


class HeartbeatView(AgentAPIView):
    @extend_schema(request=HeartbeatSerializer, responses=HeartbeatReplySerializer)
    def post(self, request):
        serializer = HeartbeatSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        container: Container = request.auth
        fields = {key: value for key, value in serializer.validated_data.items() if key != "instance_id"}
        fields["last_seen_at"] = timezone.now()
        Container.objects.filter(pk=container.pk).update(**fields)
        return Response({
            "server_time": timezone.now(),
            "container_id": container.pk,
            "role": container.role,
            "heartbeat_seconds": settings.DTN_HEARTBEAT_SECONDS,
            "claim_hold_seconds": settings.DTN_CLAIM_HOLD_SECONDS,
            "lease_seconds": settings.DTN_LEASE_SECONDS,
            "failure_reasons": [reason.value for reason in FailureReason],
        })


def _hold_seconds(request) -> float:
    raw = request.GET.get("wait")
    if raw is None:
        return settings.DTN_CLAIM_HOLD_SECONDS
    try:
        return max(0.0, min(float(raw), settings.DTN_CLAIM_HOLD_SECONDS))
    except ValueError:
        return settings.DTN_CLAIM_HOLD_SECONDS


class ClaimView(AgentAPIView):
    """Claim the oldest queued command of this container (long-poll).

    With nothing to do, the request is held up to `wait` seconds (the server's
    hold at most) and answered 201 as soon as a command is queued, else 204."""

    @extend_schema(
        request=ClaimSerializer,
        parameters=[OpenApiParameter("wait", float, description="seconds to hold an empty answer")],
        responses={201: AgentCommandSerializer, 204: None},
    )
    def post(self, request):
        serializer = ClaimSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        command = queue.claim_next(request.auth, serializer.validated_data["instance_id"])
        if command is None:
            response = Response(status=status.HTTP_204_NO_CONTENT)
            response.hold_for_container = request.auth.pk
            return response
        return Response(AgentCommandSerializer(command).data, status=status.HTTP_201_CREATED)

    @classmethod
    def as_view(cls, **initkwargs):
        """An async view around the sync one: each attempt is a short database
        call on a worker thread; the waits between attempts hold no thread."""
        attempt = super().as_view(**initkwargs)

        async def view(request, *args, **kwargs):
            deadline = time.monotonic() + _hold_seconds(request)
            request.body  # read once; every attempt re-parses the cached bytes
            while True:
                response = await waiters.call_db(attempt, request, *args, **kwargs)
                container_id = getattr(response, "hold_for_container", None)
                remaining = deadline - time.monotonic()
                if container_id is None or remaining <= 0:
                    return response
                await waiters.wait(container_id, remaining)

        view.cls = cls
        view.initkwargs = initkwargs
        return csrf_exempt(view)


class ReportView(AgentAPIView):
    """Report progress or the outcome of a held command; the reply carries stop requests."""

    @extend_schema(request=ReportSerializer, responses={200: ReportReplySerializer, 409: None})
    def patch(self, request, command_id):
        # Ownership first: another container's command is 404 whatever the body says.
        command = get_object_or_404(Command, pk=command_id, container=request.auth)
        serializer = ReportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            reply = queue.report(command, data["instance_id"], data["state"], progress=data.get("progress"),
                                 reason=data.get("reason", ""), message=data.get("message", ""))
        except queue.QueueError as exc:
            return Response(error_body(str(exc), "state"), status=status.HTTP_409_CONFLICT)
        return Response({
            "command_id": reply.command.pk,
            "state": reply.command.state,
            "cancel_requested": reply.cancel_requested,
            "lease_expires_at": reply.command.lease_expires_at,
        })
