"""A record of an app higher up, shown inside one of an app below it.

A transfer's record shows the network check it began with, but the network
checks (portal/netcheck) sit above the transfers and may not be imported by
them. So the app that owns a record lends its serializer here at start-up
(its AppConfig.ready), and the one below declares an Embedded field naming the
record: each keeps to its own layer, and the API and its schema are as if the
serializer were nested directly (portal/lib/schema.py documents the field so)."""

from __future__ import annotations

from rest_framework import serializers

_lent: dict[str, type[serializers.Serializer]] = {}


def lend(record: str, serializer_class: type[serializers.Serializer]) -> None:
    """`record` is the model's label, e.g. 'netcheck.NetworkCheck'."""
    _lent[record] = serializer_class


def serializer_for(record: str) -> type[serializers.Serializer]:
    try:
        return _lent[record]
    except KeyError:
        raise LookupError(f"no serializer was lent for {record}: is its app installed?") from None


class Embedded(serializers.Field):
    """The record as its owner's serializer shows it; always read-only."""

    def __init__(self, record: str, **kwargs):
        kwargs["read_only"] = True
        super().__init__(**kwargs)
        self.record = record

    def to_representation(self, value):
        return serializer_for(self.record)(value, context=self.context).data
