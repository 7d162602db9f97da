"""The one pagination of every list the people's API answers: `?limit=&offset=`, answered as
{count, next, previous, results} (DRF's limit-offset style), newest or oldest first as each list says."""

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination, LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

# Past any count a list can have; keeps the number a database's OFFSET takes.
MAX_OFFSET = 2**53


class Pages(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500

    def get_limit(self, request):
        return self._whole(request, self.limit_query_param, 1, self.max_limit, self.default_limit)

    def get_offset(self, request):
        return self._whole(request, self.offset_query_param, 0, MAX_OFFSET, 0)

    @staticmethod
    def _whole(request, name: str, low: int, high: int, default: int) -> int:
        # DRF reads a malformed value as the default: refused instead, so a typo is not a silent first page.
        raw = request.query_params.get(name)
        if raw is None:
            return default
        if not raw.isdigit() or not low <= int(raw) <= high:
            raise ValidationError({name: f"must be a whole number from {low} to {high}"})
        return int(raw)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            # The ranges the answer holds to; an offset past the end is an empty page.
            if parameter["name"] == self.limit_query_param:
                parameter["schema"].update({"minimum": 1, "maximum": self.max_limit, "default": self.default_limit})
            elif parameter["name"] == self.offset_query_param:
                parameter["schema"].update({"minimum": 0, "maximum": MAX_OFFSET})
        return parameters


class AfterPages(BasePagination):
    """Pages of a list too long to count or to skip through (a transfer's files: a million rows), in the
    order of the rows' IDs: `?limit=` and `?after=` (the ID the `next` link carries), answered as
    {next, results}. Each page is one range read of an index, whatever page it is and however long the list;
    there is no `count` (the record's counters say how many) and no `previous`."""

    default_limit = 500
    max_limit = 5000
    max_after = 2**63 - 1

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        limit = Pages._whole(request, "limit", 1, self.max_limit, self.default_limit)
        after = Pages._whole(request, "after", 0, self.max_after, 0)
        rows = list(queryset.filter(pk__gt=after).order_by("pk")[:limit + 1])
        self.next_after = rows[limit - 1].pk if len(rows) > limit else None
        return rows[:limit]

    def get_paginated_response(self, data):
        return Response({"next": self.get_next_link(), "results": data})

    def get_next_link(self):
        if self.next_after is None:
            return None
        return replace_query_param(self.request.build_absolute_uri(), "after", self.next_after)

    def get_paginated_response_schema(self, schema):
        return {"type": "object", "required": ["next", "results"], "properties": {
            "next": {"type": "string", "nullable": True, "format": "uri",
                     "description": "The next page; null on the last."},
            "results": schema}}

    def get_schema_operation_parameters(self, view):
        return [
            {"name": "limit", "required": False, "in": "query",
             "description": "Rows per page.",
             "schema": {"type": "integer", "minimum": 1, "maximum": self.max_limit, "default": self.default_limit}},
            {"name": "after", "required": False, "in": "query",
             "description": "Where the page starts: the value the previous page's `next` link carries.",
             "schema": {"type": "integer", "minimum": 0, "maximum": self.max_after, "default": 0}},
        ]
