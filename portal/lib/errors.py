"""One shape for every API error: HTTP 4xx with {"error": ..., "field": ...}.

Clients (the agent, the CLI, scripts) read `error` for a sentence a person
can act on and `field` to put it beside the right input.

Exceptions, from the top:

    Refused(field, message)       a request the portal turns down: 400 unless the kind says otherwise
      containers.services.NameTaken           409  a second container of that name
      containers.tasks.TaskRefused            400  a task kind the container does not answer
      containers.tasks.AlreadyAnswered        409  a task answered or expired already
      grants.services.GrantRefused            400, or 409 when the person holds a grant already
      grants.models.NotGranted                400  no usable grant to send through to that receiver
      transfers.services.SendRefused          400, or 409 for a restart the grant no longer allows
      netcheck.services.CheckRefused          400  a check of a path that cannot be checked now
      transfers.queue.QueueError              409  a change the command's state does not allow
        NotLeaseHolder, IllegalTransition

The API answers every Refused here, once (exception_handler); the pages catch
them to put the message beside the field.
"""

from __future__ import annotations

from http import HTTPStatus

from django.http import Http404, JsonResponse
from rest_framework import exceptions, status as http
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class Refused(Exception):
    """A request turned down, with a sentence for the person and the input it is about (None for the
    request as a whole). `status` is the kind's answer; one instance may say otherwise."""

    status = http.HTTP_400_BAD_REQUEST

    def __init__(self, field: str | None, message: str, *, status: int | None = None):
        super().__init__(message)
        self.field = field
        self.message = message
        if status is not None:
            self.status = status


def error_body(message: str, field: str | None = None, **extra) -> dict:
    body = {"error": message, "field": field}
    body.update(extra)
    return body


def json_error(message: str, status_code: int, field: str | None = None, **extra) -> JsonResponse:
    return JsonResponse(error_body(message, field, **extra), status=status_code)


def _first_message(detail) -> str:
    if isinstance(detail, list):
        return _first_message(detail[0]) if detail else "invalid value"
    if isinstance(detail, dict):
        return _first_message(next(iter(detail.values()))) if detail else "invalid value"
    return str(detail)


def _flatten(detail) -> dict[str, str]:
    if isinstance(detail, dict):
        return {key: _first_message(value) for key, value in detail.items()}
    return {}


NOT_FOUND = "not found"


def _not_found_message(exc: Http404) -> str:
    # Our own sentences stay ("has not reported a certificate yet"); a bare Http404 said nothing (""), and
    # get_object_or_404's named our models. Neither says whether the object exists for someone else.
    message = str(exc.args[0]) if exc.args else ""
    if not message or (message.startswith("No ") and message.endswith(" matches the given query.")):
        return NOT_FOUND
    return message


def exception_handler(exc, context):
    if isinstance(exc, Refused):
        return Response(error_body(exc.message, exc.field), status=exc.status)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, Http404):
        response.data = error_body(_not_found_message(exc))
        return response
    if isinstance(exc, exceptions.ValidationError) and isinstance(exc.detail, dict):
        fields = _flatten(exc.detail)
        field, message = next(iter(fields.items()))
        if field in ("non_field_errors", "detail"):
            field = None
        body = error_body(message if field is None else f"{field}: {message}", field)
        if len(fields) > 1:
            body["fields"] = fields
    else:
        body = error_body(_first_message(exc.detail) if hasattr(exc, "detail") else str(exc))
    if not body["error"]:
        body["error"] = HTTPStatus(response.status_code).phrase.lower()
    response.data = body
    return response

