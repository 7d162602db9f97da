"""What is already in a grant's folder at its receiver (issue 25, the send page's second pane): the portal asks the
receiver through the side channel (`list_received`) on behalf of a person who may see the grant.

The bucket comes from the grant, never from the request, so a person can only ever list their own grant's folder;
the path is checked again by the agent (agent/tasks.py), which never leaves that folder."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from dtn_protocol.tasks import TaskKind
from portal.containers import tasks as agent_tasks
from portal.containers.api.serializers import TaskSerializer
from portal.containers.models import AgentTask
from portal.grants.api.views import visible_grant
from portal.lib.errors import Refused


class ListingSerializer(serializers.Serializer):
    path = serializers.CharField(required=False, allow_blank=True, max_length=4096, default=".",
                                 help_text="A folder under the grant's bucket; empty or '.' for its top.")


class GrantListingView(APIView):
    """Ask the grant's receiver for one level of the grant's folder. Poll GET …/listing/{task_id}."""

    @extend_schema(request=ListingSerializer, responses={201: TaskSerializer})
    def post(self, request, grant_id):
        grant = visible_grant(request, grant_id)
        if not grant.is_active:
            raise Refused(None, "this grant was revoked")
        serializer = ListingSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        task = agent_tasks.ask(grant.receiver, TaskKind.LIST_RECEIVED,
                               {"bucket": grant.bucket, "path": serializer.validated_data["path"] or "."},
                               user=request.user)
        return Response(TaskSerializer(task).data, status=status.HTTP_201_CREATED)


class GrantListingTaskView(APIView):
    @extend_schema(responses=TaskSerializer)
    def get(self, request, grant_id, task_id):
        grant = visible_grant(request, grant_id)
        task = get_object_or_404(AgentTask, pk=task_id, container=grant.receiver, requested_by=request.user,
                                 kind=TaskKind.LIST_RECEIVED)
        return Response(TaskSerializer(agent_tasks.expire_if_overdue(task)).data)
