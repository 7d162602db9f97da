from __future__ import annotations

import functools
import hashlib
import time

from django.conf import settings
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from dtn_protocol.endpoints import EndpointRefused, check_receiver
from dtn_protocol.failures import FailureReason
from portal.agentapi.api.serializers import (
    AgentCommandSerializer,
    AgentGrantListSerializer,
    ClaimSerializer,
    HeartbeatReplySerializer,
    HeartbeatSerializer,
    ReportReplySerializer,
    ReportSerializer,
    TaskAnswerSerializer,
    TaskListSerializer,
    TaskWaitSerializer,
)
from portal.agentapi.auth import AgentTokenAuthentication, IsAgent
from portal.agentapi.waiters import Waiters, call_db, wait_any
from portal.agentapi.waiters import claims as claim_waiters
from portal.agentapi.waiters import tasks as task_waiters
from portal.containers import tasks as agent_tasks
from portal.containers.addresses import receiver_rule
from portal.containers.models import AgentTask, Container
from portal.lib.errors import error_body
from portal.lib.schema import ErrorSerializer
from portal.transfers import queue
from portal.grants.models import Grant
from portal.transfers.models import Command, DestinationUnavailable, Transfer


class AgentAPIView(APIView):
    authentication_classes = [AgentTokenAuthentication]
    permission_classes = [IsAgent]


class PooledView(AgentAPIView):
    """A call of the agents' that runs on the database threads (`call_db`).

    Under ASGI, Django runs each synchronous view on a thread of its own with a
    connection of its own, opened for that request: thousands of agents
    heartbeating would open connections past PostgreSQL's limit. On the pool,
    every agent call of a server process shares its DTN_DB_THREADS connections,
    kept open between calls (docs/performance.md, "Control plane")."""

    @classmethod
    def as_view(cls, **initkwargs):
        handle = super().as_view(**initkwargs)

        async def view(request, *args, **kwargs):
            return await call_db(functools.partial(handle, request, *args, **kwargs))

        view.cls = cls
        view.initkwargs = initkwargs
        return csrf_exempt(view)


class HeartbeatView(PooledView):
    @extend_schema(request=HeartbeatSerializer, responses=HeartbeatReplySerializer)
    def post(self, request):
        serializer = HeartbeatSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        container: Container = request.auth
        data = dict(serializer.validated_data)
        data.pop("instance_id", None)
        if data.get("endpoint"):
            # Every grant of a receiver is served at its one address, which must pass the rule
            # senders apply too: a heartbeat cannot aim senders at loopback or the portal itself.
            pinned = bool(data.get("certificate_pem") or container.certificate_pem)
            try:
                data["endpoint"] = check_receiver(data["endpoint"], receiver_rule(), pinned=pinned)
            except EndpointRefused as exc:
                raise ValidationError({"endpoint": [str(exc)]}) from None
        data["last_seen_at"] = timezone.now()
        Container.objects.filter(pk=container.pk).update(**data)
        return Response({
            "server_time": timezone.now(),
            "container_id": container.pk,
            "role": container.role,
            "heartbeat_seconds": settings.DTN_HEARTBEAT_SECONDS,
            "claim_hold_seconds": settings.DTN_CLAIM_HOLD_SECONDS,
            "lease_seconds": settings.DTN_LEASE_SECONDS,
            "failure_reasons": [reason.value for reason in FailureReason],
            "tasks": offered(container),
        })



def offered(container: Container) -> list[dict]:
    return [agent_tasks.offer(task) for task in agent_tasks.to_offer(container)]


class LongPollView(AgentAPIView):
    """An async view around a sync one: each attempt is a short database call
    on a worker thread, and the waits between attempts hold no thread.

    The sync handler answers at once; an empty answer it marks with
    `hold_for_container` is held, up to `wait` seconds (the server's hold at
    most), until `waiters` wakes it for that container, then tried again."""

    waiters: Waiters

    @classmethod
    def as_view(cls, **initkwargs):
        attempt = super().as_view(**initkwargs)

        async def view(request, *args, **kwargs):
            hold = _hold_seconds(request)
            deadline = time.monotonic() + hold
            request.body  # read once; every attempt re-parses the cached bytes
            # Whether an attempt should look at everything: it was woken, or its hold is too short for a
            # sweeper to wake it.
            request.long_poll_woken = hold < 2 * settings.DTN_CLAIM_SWEEP_MS / 1000
            request.long_poll_attempts = 0
            while True:
                response = await call_db(attempt, request, *args, **kwargs)
                request.long_poll_attempts += 1
                container_id = getattr(response, "hold_for_container", None)
                remaining = deadline - time.monotonic()
                if container_id is None or remaining <= 0:
                    return response
                request.long_poll_woken = await wait_any(getattr(response, "hold_on", None) or (cls.waiters,),
                                                         container_id, remaining)

        view.cls = cls
        view.initkwargs = initkwargs
        return csrf_exempt(view)


def _empty(request, *hold_on: Waiters) -> Response:
    """Nothing yet: held (by LongPollView) until one of `hold_on` (the view's own waiters by default)
    wakes this container, or the hold ends."""
    response = Response(status=status.HTTP_204_NO_CONTENT)
    response.hold_for_container = request.auth.pk
    response.hold_on = hold_on
    return response


def _hold_seconds(request) -> float:
    raw = request.GET.get("wait")
    if raw is None:
        return settings.DTN_CLAIM_HOLD_SECONDS
    try:
        return max(0.0, min(float(raw), settings.DTN_CLAIM_HOLD_SECONDS))
    except ValueError:
        return settings.DTN_CLAIM_HOLD_SECONDS


class ClaimView(LongPollView):
    """Claim the oldest queued command of this container (long-poll).

    With nothing to do, the request is held up to `wait` seconds (the server's
    hold at most) and answered 201 as soon as a command is queued, else 204.
    With `tasks: true` it also answers 200 with the side-channel tasks as soon as
    one is asked: an idle agent then keeps one long-poll open, not two."""

    waiters = claim_waiters

    @extend_schema(
        request=ClaimSerializer,
        parameters=[OpenApiParameter("wait", float, description="seconds to hold an empty answer")],
        responses={201: AgentCommandSerializer, 200: TaskListSerializer, 204: None},
    )
    def post(self, request):
        serializer = ClaimSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if not request.long_poll_attempts:
            # A claim is a sign of life: an idle agent heartbeats only now and then (docs/protocol.md).
            Container.objects.filter(pk=request.auth.pk).update(last_seen_at=timezone.now())
        with_tasks = serializer.validated_data["tasks"]
        # Tasks are looked for once something woke the claim: a task already waiting when it arrives
        # wakes it at the tasks sweeper's next tick (250 ms), so the common idle claim reads nothing more
        # (a claim held too briefly to be woken looks at once).
        if with_tasks and request.long_poll_woken:
            found = offered(request.auth)
            if found:
                return Response({"tasks": found})
        while True:
            command = queue.claim_next(request.auth, serializer.validated_data["instance_id"])
            if command is None:
                return _empty(request, claim_waiters, task_waiters) if with_tasks else _empty(request)
            context = {}
            if command.transfer_id is not None:
                try:
                    context["destination"] = _destination(command)
                except DestinationUnavailable as exc:
                    # E.g. the grant was revoked after the send: the command fails
                    # without its keys ever leaving the portal; try the next one.
                    queue.fail_held(command, exc.reason, str(exc))
                    continue
            return Response(AgentCommandSerializer(command, context=context).data, status=status.HTTP_201_CREATED)



class TaskWaitView(LongPollView):
    """Side-channel tasks for this container (long-poll): answered 200 with the
    pending tasks as soon as there is one, else 204 after `wait` seconds."""

    waiters = task_waiters

    @extend_schema(
        request=TaskWaitSerializer,
        parameters=[OpenApiParameter("wait", float, description="seconds to hold an empty answer")],
        responses={200: TaskListSerializer, 204: None},
    )
    def post(self, request):
        TaskWaitSerializer(data=request.data).is_valid(raise_exception=True)
        found = offered(request.auth)
        return Response({"tasks": found}) if found else _empty(request)


class TaskAnswerView(PooledView):
    """Answer a side-channel task: its result, or a sentence saying why not."""

    @extend_schema(request=TaskAnswerSerializer, responses={200: None, 409: ErrorSerializer})
    def post(self, request, task_id):
        task = get_object_or_404(AgentTask, pk=task_id, container=request.auth)
        serializer = TaskAnswerSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        agent_tasks.answer(task, data["ok"], data.get("result"), data.get("error", ""))
        return Response({"task_id": task.pk, "state": task.state})


def _destination(command: Command) -> dict:
    transfer = (Transfer.objects.select_related("grant", "receiver").get(pk=command.transfer_id))
    return transfer.destination_for_agent()


class GrantsView(PooledView):
    """The active grants of this receiver, with their keys: the S3 server this
    agent runs serves exactly these buckets with exactly these keys.

    Answers an ETag; send it back as If-None-Match to get 304 while nothing changed."""

    @extend_schema(responses={200: AgentGrantListSerializer, 304: None, 403: None})
    def get(self, request):
        container: Container = request.auth
        if not container.is_receiver:
            return Response(error_body("only receiver containers serve grants"), status=status.HTTP_403_FORBIDDEN)
        grants = list(Grant.objects.active().filter(receiver=container).select_related("grantee")
                      .order_by("created_at", "id"))
        etag = '"' + hashlib.sha256(",".join(str(g.pk) for g in grants).encode()).hexdigest()[:32] + '"'
        if etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]:
            response = Response(status=status.HTTP_304_NOT_MODIFIED)
        else:
            items = [{"grant_id": g.pk, "grantee": g.grantee.username, "bucket": g.bucket,
                      "access_key": g.access_key, "secret_key": g.secret_key(), "created_at": g.created_at}
                     for g in grants]
            response = Response(AgentGrantListSerializer({"grants": items}).data)
        response["ETag"] = etag
        response["Cache-Control"] = "no-store"
        return response


class ReportView(PooledView):
    """Report progress or the outcome of a held command; the reply carries stop requests."""

    @extend_schema(request=ReportSerializer, responses={200: ReportReplySerializer, 409: ErrorSerializer})
    def patch(self, request, command_id):
        # Ownership first: another container's command is 404 whatever the body says.
        command = get_object_or_404(Command, pk=command_id, container=request.auth)
        serializer = ReportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        reply = queue.report(command, data["instance_id"], data["state"], progress=data.get("progress"),
                             reason=data.get("reason", ""), message=data.get("message", ""))
        body = {
            "command_id": reply.command.pk,
            "state": reply.command.state,
            "cancel_requested": reply.cancel_requested,
            "lease_expires_at": reply.command.lease_expires_at,
        }
        if reply.verification is not None:
            body["verification"] = reply.verification
        return Response(body)
