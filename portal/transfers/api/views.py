from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.containers.api.views import owned_container
from portal.lib.errors import conflict
from portal.transfers import queue
from portal.transfers.api.serializers import CommandSerializer
from portal.transfers.models import Command


def owned_command(request, command_id) -> Command:
    return get_object_or_404(Command.objects.select_related("container"), pk=command_id,
                             container__owner=request.user)


class ContainerCommandsView(APIView):
    """A container's queue, oldest first, finished commands included until deleted."""

    @extend_schema(responses=CommandSerializer(many=True))
    def get(self, request, container_id):
        container = owned_container(request, container_id)
        return Response(CommandSerializer(container.commands.all(), many=True).data)


class CommandView(APIView):
    @extend_schema(responses=CommandSerializer)
    def get(self, request, command_id):
        return Response(CommandSerializer(owned_command(request, command_id)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, command_id):
        """Remove a finished command from the queue."""
        try:
            queue.delete_finished(owned_command(request, command_id))
        except queue.IllegalTransition as exc:
            return conflict(str(exc))
        return Response(status=status.HTTP_204_NO_CONTENT)


class StopCommandView(APIView):
    @extend_schema(request=None, responses=CommandSerializer)
    def post(self, request, command_id):
        """Cancel a queued command now, or ask the agent to stop a running one."""
        try:
            command = queue.request_stop(owned_command(request, command_id))
        except queue.IllegalTransition as exc:
            return conflict(str(exc))
        return Response(CommandSerializer(command).data)
