"""The one pagination of every list the people's API answers: `?limit=&offset=`, answered as
{count, next, previous, results} (DRF's limit-offset style), newest or oldest first as each list says."""

from rest_framework.pagination import LimitOffsetPagination


class Pages(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            # What the answer does with these, said in the schema: a limit above the most is the most; an offset
            # past the end is an empty page.
            if parameter["name"] == self.limit_query_param:
                parameter["schema"].update({"minimum": 1, "maximum": self.max_limit, "default": self.default_limit})
            elif parameter["name"] == self.offset_query_param:
                parameter["schema"].update({"minimum": 0})
        return parameters
