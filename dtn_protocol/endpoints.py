"""Where a sender may be sent: the rule a receiver's address must pass, applied twice — by the portal
when a receiver reports it, and by the sender before it connects (a forged record then still sends
nothing anywhere).

A receiver's address is `https://host:port` (`http://` only where plain endpoints are allowed, and
never for a receiver whose certificate is pinned). Loopback, link-local (169.254.0.0/16, fe80::/10),
the unspecified address and the portal's own address are refused unless local endpoints are
allowed: a receiver's owner could otherwise point other people's senders, with a grant's keys, at
services on their own hosts. Private networks (10/8, 172.16/12, 192.168/16) are fine: labs live there.

An S3 endpoint a person types for their own sender is theirs to choose; this rule is for receivers.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import urlsplit

LOCAL_NETWORKS = tuple(ipaddress.ip_network(net) for net in (
    "127.0.0.0/8", "::1/128", "169.254.0.0/16", "fe80::/10", "0.0.0.0/8", "::/128"))
LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


class Destination(StrEnum):
    """What a transfer's or a check's destination is, as the agent receives it (`destination.kind`)."""

    RECEIVER = "receiver"  # a receiver container, through a grant: the rule applies
    S3 = "s3"  # an S3 endpoint its sender's owner typed: theirs to choose


class EndpointRefused(ValueError):
    """A receiver address the rule refuses; the message is a sentence for people."""


@dataclass(frozen=True)
class Rule:
    allow_plain: bool = False
    allow_local: bool = False
    # The portal's own host names and addresses (what a receiver may not point senders at).
    own_hosts: frozenset[str] = field(default_factory=frozenset)


def split(url: str) -> tuple[str, str, int]:
    """scheme, host, port of `scheme://host:port` (nothing else: no user, path, query)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise EndpointRefused(f"{url!r} is not an address like https://receiver.example.org:9443") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointRefused(f"{url!r} is not an address like https://receiver.example.org:9443")
    if parts.username or parts.password or parts.path.strip("/") or parts.query or parts.fragment:
        raise EndpointRefused(f"{url!r}: a receiver's address is scheme://host:port, nothing more")
    if port is None:
        raise EndpointRefused(f"{url!r} names no port (e.g. https://{parts.hostname}:9443)")
    host = parts.hostname.lower().rstrip(".")
    if not (_HOST_NAME.fullmatch(host) or _is_address(host)):
        raise EndpointRefused(f"{url!r}: {host!r} is not a host name or an IP address")
    return parts.scheme, host, port


_HOST_NAME = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_local_address(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in LOCAL_NETWORKS)


def resolve(host: str) -> set[str]:
    """Every address the name has here (an address is itself); empty when it does not resolve."""
    try:
        return {info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
    except (OSError, UnicodeError):
        return set()


def check_receiver(url: str, rule: Rule, *, pinned: bool, addresses: set[str] | None = None) -> str:
    """The receiver's address, normalised (`scheme://host:port`), or EndpointRefused. `pinned`: the
    receiver has a certificate senders pin. `addresses`: what the host resolves to, where the caller
    resolves it (the sender does, before it connects; the portal checks the name as written)."""
    scheme, host, port = split(url)
    shown = f"[{host}]" if ":" in host else host
    if scheme == "http":
        if pinned:
            raise EndpointRefused(f"{url}: this receiver has a pinned certificate, so it is reached over"
                                  " https:// only (its grant's keys never travel over plain HTTP)")
        if not rule.allow_plain:
            raise EndpointRefused(f"{url}: plain http:// receivers are off on this portal; the receiver's"
                                  " agent serves TLS by default (DTN_RECEIVER_TLS=true)")
    if not rule.allow_local:
        named = {host} | (addresses or set())
        if host in LOCAL_NAMES or host.endswith(".localhost") or any(is_local_address(a) for a in named):
            raise EndpointRefused(f"{url}: {host} is a loopback or link-local address, which other sites"
                                  " cannot reach; set the receiver's public name or address"
                                  " (DTN_RECEIVER_HOST)")
        own = {h.lower().rstrip(".") for h in rule.own_hosts}
        if named & own:
            raise EndpointRefused(f"{url}: {host} is the portal's own address, not a receiver's")
    return f"{scheme}://{shown}:{port}"
