from django.db import connection
from django.http import JsonResponse
from django.views.defaults import page_not_found
from django.views.defaults import server_error as html_server_error

from portal.lib.errors import json_error

API_PREFIXES = ("/api/", "/register")


def healthz(request):
    """For load balancers and compose health checks: the process answers and the database does."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


def not_found(request, exception=None):
    if request.path.startswith(API_PREFIXES):
        return json_error("not found", 404)
    return page_not_found(request, exception)


def server_error(request):
    if request.path.startswith(API_PREFIXES):
        return json_error("internal error; it has been logged", 500)
    return html_server_error(request)
