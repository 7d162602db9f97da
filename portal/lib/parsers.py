"""Request bodies as the API reads them: JSON no deeper than MAX_DEPTH, and JSON values stored as they came
(an agent's health, a task's result) no bigger than their field allows.

The stock JSON parser hands a body nested thousands deep to the decoder, whose RecursionError escaped as a
500 before any login was checked; one nested a few hundred deep decoded, then cost every serializer and
check that walks it. Bodies larger than DTN_MAX_REQUEST_BYTES never get here (portal/asgi.py)."""

from __future__ import annotations

import json

from rest_framework import serializers
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# Deeper than any body of the protocol (a report's network check is about 5 levels), far from the decoder's
# recursion limit.
MAX_DEPTH = 32


def depth_exceeds(value, limit: int) -> bool:
    """Whether `value` nests containers more than `limit` deep; iterative, so no depth can break it."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested more than {MAX_DEPTH} levels deep") from None
        if depth_exceeds(data, MAX_DEPTH):
            raise ParseError(f"JSON parse error - nested more than {MAX_DEPTH} levels deep")
        return data


def encoded_size(value) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


class BoundedJSONField(serializers.JSONField):
    """A JSON value kept as sent, at most `max_bytes` once encoded, and (with `object_only`) an object."""

    def __init__(self, *, max_bytes: int, object_only: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.max_bytes = max_bytes
        self.object_only = object_only

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if self.object_only and not isinstance(value, dict):
            raise serializers.ValidationError("must be a JSON object")
        if encoded_size(value) > self.max_bytes:
            raise serializers.ValidationError(f"must be at most {self.max_bytes} bytes of JSON")
        return value
