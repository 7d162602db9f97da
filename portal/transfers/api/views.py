import csv
import io
import json

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.containers.api.views import owned_container
from portal.lib.errors import Refused
from portal.lib.pagination import AfterPages
from portal.lib.streaming import RowStream
from portal.transfers import queue, services
from portal.transfers.api.serializers import (
    CommandSerializer,
    SendSerializer,
    TransferEventSerializer,
    TransferFileSerializer,
    TransferSerializer,
    TransferStatusSerializer,
)
from portal.transfers.choices import TransferState
from portal.transfers.models import Command, Transfer, TransferFile

MANIFEST_COLUMNS = TransferFileSerializer.Meta.fields
# Rows a manifest reads from its cursor at a time, and writes out as one chunk.
MANIFEST_CHUNK_ROWS = 2000


def owned_command(request, command_id) -> Command:
    return get_object_or_404(Command.objects.select_related("container"), pk=command_id,
                             container__owner=request.user)


def owned_transfer(request, transfer_id, queryset=None) -> Transfer:
    # Another person's transfer is "not found", never "forbidden".
    queryset = queryset if queryset is not None else Transfer.objects.select_related(
        "sender", "receiver", "latest_command", "network_check")
    return get_object_or_404(queryset, pk=transfer_id, owner=request.user)


class ContainerCommandsView(generics.ListAPIView):
    """A container's queue, oldest first, finished commands included until deleted."""

    serializer_class = CommandSerializer

    def get_queryset(self):
        return owned_container(self.request, self.kwargs["container_id"]).commands.order_by("created_at", "id")


class CommandView(APIView):
    @extend_schema(responses=CommandSerializer)
    def get(self, request, command_id):
        return Response(CommandSerializer(owned_command(request, command_id)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, command_id):
        """Remove a finished command from the queue. A transfer it belonged to keeps its record."""
        queue.delete_finished(owned_command(request, command_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class StopCommandView(APIView):
    @extend_schema(request=None, responses=CommandSerializer)
    def post(self, request, command_id):
        """Cancel a queued command now, or ask the agent to stop a running one."""
        command = queue.request_stop(owned_command(request, command_id))
        return Response(CommandSerializer(command).data)


# --- Transfers ----------------------------------------------------------------------------------


class TransferListView(generics.ListAPIView):
    """Your transfers, newest first (`?state=` filters); POST sends."""

    serializer_class = TransferStatusSerializer

    def get_queryset(self):
        transfers = services.owned_transfers(self.request.user).select_related("latest_command", "network_check")
        state = self.request.GET.get("state")
        if state:
            if state not in TransferState.values:
                raise Refused("state", f"state must be one of {', '.join(TransferState.values)}")
            transfers = transfers.filter(state=state)
        return transfers

    @extend_schema(parameters=[OpenApiParameter("state", OpenApiTypes.STR, enum=TransferState.values,
                                                description="Only transfers in this state.")])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(request=SendSerializer, responses={201: TransferSerializer})
    def post(self, request):
        """Send: a transfer and its first command in the sender container's queue."""
        serializer = SendSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        transfer = services.send(request.user, serializer.to_request())
        transfer = owned_transfer(request, transfer.pk)
        return Response(TransferSerializer(transfer).data, status=status.HTTP_201_CREATED)


class TransferView(APIView):
    @extend_schema(responses=TransferSerializer)
    def get(self, request, transfer_id):
        return Response(TransferSerializer(owned_transfer(request, transfer_id)).data)


class TransferStatusView(APIView):
    """The live numbers, for a page to poll: one query beyond authentication."""

    @extend_schema(responses=TransferStatusSerializer)
    def get(self, request, transfer_id):
        transfer = owned_transfer(request, transfer_id,
                                  Transfer.objects.select_related("latest_command", "network_check"))
        return Response(TransferStatusSerializer(transfer).data)


class StopTransferView(APIView):
    @extend_schema(request=None, responses={200: TransferStatusSerializer, 409: None})
    def post(self, request, transfer_id):
        """Stop: a queued attempt is canceled now; a running one stops at its agent's next report."""
        transfer = owned_transfer(request, transfer_id)
        queue.stop_transfer(transfer)
        return Response(TransferStatusSerializer(owned_transfer(request, transfer_id)).data)


class RestartTransferView(APIView):
    @extend_schema(request=None, responses={201: TransferSerializer, 409: None})
    def post(self, request, transfer_id):
        """Restart a stopped or failed transfer: a new attempt that copies only
        what is missing or different at the destination."""
        transfer = owned_transfer(request, transfer_id)
        services.restart(transfer)
        return Response(TransferSerializer(owned_transfer(request, transfer_id)).data,
                        status=status.HTTP_201_CREATED)


class TransferEventsView(generics.ListAPIView):
    """The transfer's event log, oldest first."""

    serializer_class = TransferEventSerializer

    def get_queryset(self):
        transfer = owned_transfer(self.request, self.kwargs["transfer_id"], Transfer.objects.all())
        return transfer.events.order_by("at", "id")


class TransferFilesView(generics.ListAPIView):
    """The per-file results a page at a time, in the order the sender first reported them: `?limit=` and
    `?after=` (the `next` link's). A page costs the same whatever page it is and however many files the
    transfer holds; the manifests below are the whole list in one download."""

    serializer_class = TransferFileSerializer
    pagination_class = AfterPages

    def get_queryset(self):
        transfer = owned_transfer(self.request, self.kwargs["transfer_id"], Transfer.objects.all())
        return TransferFile.objects.filter(transfer=transfer).only("id", *MANIFEST_COLUMNS)


def _manifest_rows(transfer):
    # A server-side cursor on PostgreSQL, fetchmany on SQLite: never the whole table in memory.
    return (transfer.files.order_by("path").values_list(*MANIFEST_COLUMNS)
            .iterator(chunk_size=MANIFEST_CHUNK_ROWS))


def _in_chunks(rows, buffer: io.StringIO, write_row):
    """What `write_row` writes into `buffer`, MANIFEST_CHUNK_ROWS rows at a time (a chunk per row would cost
    a hop to the event loop per row under ASGI)."""
    for number, row in enumerate(rows, 1):
        write_row(row)
        if number % MANIFEST_CHUNK_ROWS == 0:
            yield _drain(buffer)
    if buffer.tell():
        yield _drain(buffer)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def _attachment(chunks, transfer, extension, content_type):
    response = RowStream(chunks, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="transfer-{transfer.pk}-manifest.{extension}"'
    return response


class ManifestJSONView(APIView):
    @extend_schema(responses={(200, "application/json"): OpenApiResponse(
        description="The transfer's summary and one object per file: path, size, sha256, receiver_sha256, "
                    "outcome, error.")})
    def get(self, request, transfer_id):
        """Per-file results as JSON, by path (streamed: a transfer may hold millions of files)."""
        transfer = owned_transfer(request, transfer_id)
        header = json.dumps(TransferStatusSerializer(transfer).data, default=str)
        buffer = io.StringIO()

        def write_row(row):
            buffer.write(("," if write_row.after_first else "") + json.dumps(dict(zip(MANIFEST_COLUMNS, row))))
            write_row.after_first = True

        write_row.after_first = False

        def chunks():
            yield header[:-1] + ', "manifest": ['
            yield from _in_chunks(_manifest_rows(transfer), buffer, write_row)
            yield "]}"

        return _attachment(chunks(), transfer, "json", "application/json")


class ManifestCSVView(APIView):
    @extend_schema(responses={(200, "text/csv"): OpenApiResponse(
        description="One line per file: " + ",".join(MANIFEST_COLUMNS))})
    def get(self, request, transfer_id):
        """Per-file results as CSV, by path: one header line then one line per file (streamed)."""
        transfer = owned_transfer(request, transfer_id, Transfer.objects.all())
        buffer = io.StringIO()
        writer = csv.writer(buffer)

        def chunks():
            writer.writerow(MANIFEST_COLUMNS)
            yield _drain(buffer)  # the first bytes, before the rows are read
            yield from _in_chunks(_manifest_rows(transfer), buffer, writer.writerow)

        return _attachment(chunks(), transfer, "csv", "text/csv; charset=utf-8")
