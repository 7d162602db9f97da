from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.containers import services, tasks as agent_tasks
from portal.containers.api.serializers import (
    AskSerializer,
    TaskSerializer,
    ContainerSerializer,
    RegisteredSerializer,
    RegisterSerializer,
    RotatedSerializer,
)
from portal.containers.models import AgentTask, Container
from portal.lib.certificates import pem_download


def owned_container(request, container_id) -> Container:
    # Another person's container is "not found", never "forbidden": no probing for IDs.
    return get_object_or_404(Container, pk=container_id, owner=request.user)


class ContainerListView(APIView):
    """Your containers; POST registers a new one (the same as POST /register)."""

    @extend_schema(responses=ContainerSerializer(many=True))
    def get(self, request):
        return Response(ContainerSerializer(request.user.containers.all(), many=True).data)

    @extend_schema(request=RegisterSerializer, responses={201: RegisteredSerializer})
    def post(self, request):
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        container, token = services.register(request.user, **serializer.validated_data)
        container.agent_token = token
        return Response(RegisteredSerializer(container).data, status=status.HTTP_201_CREATED)


class RegisterView(ContainerListView):
    """POST /register: a signed-in person (session or API token) registers a container
    and gets its container ID and agent token (shown once)."""

    http_method_names = ["post", "options"]


class ContainerDetailView(generics.RetrieveDestroyAPIView):
    serializer_class = ContainerSerializer

    def get_object(self):
        return owned_container(self.request, self.kwargs["container_id"])


class ContainerCertificateView(APIView):
    """The receiver's TLS certificate (PEM), the one its senders pin: its fingerprint is the
    container's `certificate_sha256`."""

    @extend_schema(responses={(200, "application/x-pem-file"): str})
    def get(self, request, container_id):
        return pem_download(owned_container(request, container_id))


class RotateTokenView(APIView):
    @extend_schema(request=None, responses=RotatedSerializer)
    def post(self, request, container_id):
        container = owned_container(request, container_id)
        token = container.rotate_token()
        return Response({"container_id": container.id, "agent_token": token})


class ContainerTasksView(APIView):
    """Ask one of your containers for something short (list its send folder, check
    the network), answered within seconds even while it runs a long transfer.
    Poll GET /api/v1/tasks/{task_id} for the answer."""

    @extend_schema(request=AskSerializer, responses={201: TaskSerializer})
    def post(self, request, container_id):
        container = owned_container(request, container_id)
        serializer = AskSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        task = agent_tasks.ask_for_person(container, serializer.validated_data["kind"],
                                          serializer.validated_data["params"], request.user)
        return Response(TaskSerializer(task).data, status=status.HTTP_201_CREATED)


class TaskView(generics.RetrieveAPIView):
    serializer_class = TaskSerializer

    def get_object(self):
        task = get_object_or_404(AgentTask, pk=self.kwargs["task_id"], container__owner=self.request.user,
                                 requested_by=self.request.user)
        return agent_tasks.expire_if_overdue(task)
