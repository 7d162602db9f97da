"""What a webhook URL may be. Shared by the settings page and the API, and
checked again at delivery time, when the host name is resolved."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

MAX_URL_LENGTH = 2000


class WebhookRefused(ValueError):
    """The URL cannot be used; the message says why, for the person. `transient`:
    it may work later (a name that does not resolve now), so a delivery is retried."""

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient


def check_webhook_url(url: str) -> str:
    """The URL, stripped, or WebhookRefused. An empty string turns the webhook off."""
    url = (url or "").strip()
    if not url:
        return ""
    if len(url) > MAX_URL_LENGTH:
        raise WebhookRefused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise WebhookRefused("the URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise WebhookRefused("this is not a valid URL (check the port)") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookRefused("the URL must start with http:// or https://")
    if not parts.hostname:
        raise WebhookRefused("the URL has no host name")
    if parts.username is not None or parts.password is not None:
        # Such URLs end up in logs and screenshots; the signature is the authentication.
        raise WebhookRefused("user names and passwords in the URL are not accepted; "
                             "check the X-DTN-Signature header instead")
    if port == 0:
        raise WebhookRefused("the URL's port must be between 1 and 65535")
    literal = _ip_literal(parts.hostname)
    if literal is not None and not settings.DTN_WEBHOOK_ALLOW_PRIVATE and not is_public(literal):
        raise WebhookRefused("the URL points at a private, loopback or link-local address; "
                             "this portal only calls public addresses")
    return url


def origin(url: str) -> str:
    """scheme://host:port of a URL: all of it that logs and error messages name,
    since a path or query string may carry a token."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = parts.hostname or "?"
    except ValueError:
        return "(invalid URL)"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}:{port}"


def _ip_literal(host: str):
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def is_public(address) -> bool:
    address = ipaddress.ip_address(address)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def resolve(host: str, port: int) -> list[str]:
    """The addresses a delivery may connect to. Unless private targets are
    allowed, every address the name resolves to must be public, so a name cannot
    point the portal at its own network (server-side request forgery)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise WebhookRefused(f"the host name does not resolve ({exc.strerror})", transient=True) from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise WebhookRefused("the host name does not resolve", transient=True)
    if not settings.DTN_WEBHOOK_ALLOW_PRIVATE:
        private = [a for a in addresses if not is_public(a)]
        if private:
            raise WebhookRefused(f"the host resolves to a non-public address ({private[0]}); "
                                 "this portal only calls public addresses")
    return addresses
