"""The box speaks the people's REST API through the CLI's client (portal/cli/client.py);
its failures become `BoxError`s, which the box reports and stops on."""

from __future__ import annotations

from portal.box.processes import BoxError
from portal.cli.client import APIError
from portal.cli.client import PortalAPI as _PortalAPI


class PortalAPI(_PortalAPI):
    @classmethod
    def _fail(cls, what: str, response) -> None:
        try:
            super()._fail(what, response)
        except APIError as exc:
            raise BoxError(str(exc)) from None

    @classmethod
    def sign_up(cls, *args, **kwargs) -> "PortalAPI":
        try:
            return super().sign_up(*args, **kwargs)
        except APIError as exc:
            raise BoxError(str(exc)) from None

    def raw(self, *args, **kwargs):
        try:
            return super().raw(*args, **kwargs)
        except APIError as exc:
            raise BoxError(str(exc)) from None
