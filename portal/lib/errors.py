"""One shape for every API error: HTTP 4xx with {"error": ..., "field": ...}.

Clients (the agent, the CLI, scripts) read `error` for a sentence a person
can act on and `field` to put it beside the right input.
"""

from __future__ import annotations

from django.http import JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


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


def exception_handler(exc, context):
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
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
    response.data = body
    return response


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "conflict"
    default_code = "conflict"


def conflict(message: str, field: str | None = None) -> Response:
    return Response(error_body(message, field), status=status.HTTP_409_CONFLICT)
