"""The one pagination of every list the people's API answers: `?limit=&offset=`, answered as
{count, next, previous, results} (DRF's limit-offset style), newest or oldest first as each list says."""

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination

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
