from django.db import connection
from django.utils.cache import add_never_cache_headers
from django.http import JsonResponse
from django.views.defaults import bad_request as html_bad_request
from django.views.defaults import page_not_found
from django.views.defaults import permission_denied as html_permission_denied
from django.views.defaults import server_error as html_server_error

from portal.lib.errors import NOT_FOUND, json_error

API_PREFIXES = ("/api/", "/register")


class NeverCached:
    """For API views whose answers may carry a secret shown once (a token, a signing secret): `no-store`, so
    no browser or proxy keeps a copy; the pages' twins use Django's never_cache."""

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        add_never_cache_headers(response)
        return response


def healthz(request):
    """For load balancers and compose health checks: the process answers and the database does."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


def not_found(request, exception=None):
    if request.path.startswith(API_PREFIXES):
        return json_error(NOT_FOUND, 404)
    return page_not_found(request, exception)


def bad_request(request, exception=None):
    # E.g. a form with too many fields, or a Host header not allowed: refused before any view ran.
    if request.path.startswith(API_PREFIXES):
        return json_error("the request is malformed and was refused", 400)
    return html_bad_request(request, exception)


def permission_denied(request, exception=None):
    if request.path.startswith(API_PREFIXES):
        return json_error("you may not do this", 403)
    return html_permission_denied(request, exception)


def server_error(request):
    if request.path.startswith(API_PREFIXES):
        return json_error("internal error; it has been logged", 500)
    return html_server_error(request)
