"""Registering a container: one place for the page, the API and /register."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from portal.containers.models import Container
from portal.lib.errors import Refused


class NameTaken(Refused):
    status = 409


def register(owner, name: str, role: str) -> tuple[Container, str]:
    try:
        # The savepoint keeps an outer transaction usable after a duplicate.
        with transaction.atomic():
            return Container.register(owner, name, role)
    except IntegrityError:
        # Two registrations racing with one name, or a repeat: never a 500.
        raise NameTaken("name", f"you already have a container named '{name}'") from None
