"""Every route, enumerated from the URL resolver, gets two tests: without
credentials it refuses (and changes nothing), and Charlie, the outsider,
cannot see or touch Alice's and Bob's objects through it.

A new route needs nothing here unless its URL takes a new kind of argument:
then add a factory to KWARG_FACTORIES that returns an object of Alice's or
Bob's. A route this file cannot build fails the suite, so no route goes
untested."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
from django.core import serializers
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from tests.portal import sending
from tests.portal.conftest import agent_client, token_client

# Routes anyone may call, each with the reason.
PUBLIC = {
    "home": "redirects to the sign-in page",
    "healthz": "load balancer health check; says only 'ok'",
    "signup": "creating an account",
    "login": "signing in",
    "logout": "signing out is harmless without a session",
    "api-signup": "creating an account",
    "api-login-token": "exchanging a password for a token (throttled)",
    "schema": "the OpenAPI document describes routes, not data",
    "api-docs": "the API documentation page",
    # The sweep's client calls from loopback, which DTN_METRICS_ALLOW_IPS allows by default; from elsewhere a
    # scrape needs DTN_METRICS_TOKEN (tests/portal/test_metrics.py). Counts only, no person's data.
    "metrics": "Prometheus' scrape: loopback or the token",
}
# Django's admin is checked as a whole (staff only) in test_admin_is_staff_only.
SKIPPED_NAMESPACES = {"admin"}
METHODS = ("get", "post", "put", "patch", "delete")


@dataclass
class World:
    """Alice's and Bob's things that Charlie must never reach."""

    alice: object
    bob: object
    charlie: object
    alice_sender: object
    bob_receiver: object
    charlie_sender: object
    extra: dict = field(default_factory=dict)
    # Other values of theirs that no answer to Charlie may contain.
    strings: list = field(default_factory=list)


def _alice_command(world):
    from portal.transfers.models import Command

    if "command" not in world.extra:
        world.extra["command"] = Command.objects.create(container=world.alice_sender)
    return world.extra["command"].pk


def _alice_token(world):
    from portal.accounts.models import PersonalToken

    if "token" not in world.extra:
        world.extra["token"], _ = PersonalToken.issue(world.alice, "alice laptop")
    return world.extra["token"].pk


def _alice_task(world):
    from portal.containers import tasks

    if "task" not in world.extra:
        world.extra["task"] = tasks.ask_for_person(world.alice_sender, "list_send_folder", {}, world.alice)
    return world.extra["task"].pk


def _alice_check(world):
    from portal.netcheck.models import NetworkCheck

    if "check" not in world.extra:
        sending.sweep_grant(world)
        world.extra["check"] = NetworkCheck.objects.create(
            owner=world.alice, sender=world.alice_sender, receiver=world.bob_receiver, state="done",
            verdict="go", summary="Go: alice's path", result={"verdict": "go"})
    return world.extra["check"].pk


# URL argument name -> a value naming one of Alice's (or Bob's) objects.
KWARG_FACTORIES = {
    "container_id": lambda world: world.alice_sender.pk,
    "command_id": _alice_command,
    "token_id": _alice_token,
    "task_id": _alice_task,
    # Bob's grant to Alice, and Alice's transfer through it.
    "grant_id": sending.sweep_grant,
    "transfer_id": sending.sweep_transfer,
    "check_id": _alice_check,
}


def _walk(patterns, prefix="", namespace=None):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern), pattern.namespace or namespace)
        elif isinstance(pattern, URLPattern):
            yield namespace, pattern.name, prefix + str(pattern.pattern), pattern


def routes():
    found = []
    for namespace, name, route, pattern in _walk(get_resolver().url_patterns):
        if namespace in SKIPPED_NAMESPACES:
            continue
        assert name, f"route {route!r} has no name: name it so it can be swept"
        found.append((name, route, pattern))
    return found


ROUTES = routes()
PROTECTED = [(name, route, pattern) for name, route, pattern in ROUTES if name not in PUBLIC]


@pytest.fixture
def world(alice, bob, charlie, alice_sender, bob_receiver, charlie_sender):
    made = World(alice, bob, charlie, alice_sender, bob_receiver, charlie_sender)
    _alice_notifications(made)
    return made


def _alice_notifications(world):
    """Alice's webhook, its secret and a delivery: settings routes take no
    argument, so they are checked for leaking these instead."""
    from portal.notifications import outbox, services

    _, secret = services.update(world.alice, {"webhook_url": "https://hooks.example.org/alice-hook-path"})
    [world.extra["delivery"], _] = outbox.enqueue_test(world.alice)
    world.strings += [secret, "alice-hook-path"]


def build_path(route: str, pattern: URLPattern, world: World) -> str:
    kwargs = {}
    for name in pattern.pattern.converters:
        factory = KWARG_FACTORIES.get(name)
        assert factory is not None, (
            f"route {route!r} takes <{name}>: add a factory for it to KWARG_FACTORIES in {__file__}")
        kwargs[name] = pattern.pattern.converters[name].to_url(factory(world))
    path = route
    for name, value in kwargs.items():
        converter = pattern.pattern.converters[name]
        for spelling in (f"<{_converter_name(converter)}:{name}>", f"<{name}>"):
            path = path.replace(spelling, value)
    assert "<" not in path, f"could not build a URL for {route!r}"
    return "/" + path


def _converter_name(converter) -> str:
    from django.urls.converters import get_converters

    return next(key for key, value in get_converters().items() if type(value) is type(converter))


def protected_state(world: World) -> str:
    """Every row that belongs to Alice or Bob, serialised: it must not change."""
    from portal.accounts.models import PersonalToken, User
    from portal.containers.models import AgentTask
    from portal.containers.models import Container
    from portal.grants.models import Grant
    from portal.notifications.models import Delivery, NotificationSettings
    from portal.transfers.models import Command, Transfer, TransferEvent, TransferFile

    owners = [world.alice.pk, world.bob.pk]
    querysets = [
        User.objects.filter(pk__in=owners),
        PersonalToken.objects.filter(user__in=owners),
        Container.objects.filter(owner__in=owners),
        Command.objects.filter(container__owner__in=owners),
        AgentTask.objects.filter(container__owner__in=owners),
        Grant.objects.filter(receiver__owner__in=owners),
        Transfer.objects.filter(owner__in=owners),
        TransferFile.objects.filter(transfer__owner__in=owners),
        TransferEvent.objects.filter(transfer__owner__in=owners),
        NotificationSettings.objects.filter(user__in=owners),
        Delivery.objects.filter(user__in=owners),
    ]
    return "\n".join(serializers.serialize("json", qs.order_by("pk")) for qs in querysets)


def secrets_of_others(world: World) -> list[str]:
    """Strings that identify Alice's and Bob's objects: none may reach Charlie."""
    values = [str(world.alice_sender.pk), str(world.bob_receiver.pk), world.alice_sender.name,
              world.bob_receiver.name, world.alice_sender.raw_token, world.bob_receiver.raw_token,
              world.alice.email, world.bob.email]
    # Small integer keys would match any digit on a page; UUIDs and names are telling.
    values += [str(value.pk) for value in world.extra.values() if not isinstance(value.pk, int)]
    return values + world.strings


def call(client, method: str, path: str):
    if method in ("get", "delete"):
        return getattr(client, method)(path)
    return getattr(client, method)(path, data=json.dumps({}), content_type="application/json")


def test_every_route_is_swept_or_public():
    names = {name for name, _, _ in ROUTES}
    assert set(PUBLIC) <= names, f"PUBLIC names routes that no longer exist: {set(PUBLIC) - names}"
    assert len(PROTECTED) >= 10


@pytest.mark.parametrize("name,route,pattern", PROTECTED, ids=[r[0] for r in PROTECTED])
@pytest.mark.parametrize("method", METHODS)
def test_it_refuses_anonymous_callers(world, name, route, pattern, method):
    path = build_path(route, pattern, world)
    before = protected_state(world)
    response = call(Client(), method, path)
    if response.status_code == 302:
        assert response["Location"].startswith("/accounts/login/"), f"{method} {path} redirects elsewhere"
    else:
        assert response.status_code in (401, 403, 405), f"{method.upper()} {path} -> {response.status_code}"
        if response.status_code != 405 and path.startswith(("/api/", "/register")):
            assert "error" in response.json()
    assert protected_state(world) == before, f"{method.upper()} {path} changed data without credentials"


def charlie_client(world: World, path: str):
    if path.startswith("/api/agent/"):
        return agent_client(world.charlie_sender)
    if path.startswith(("/api/", "/register")):
        return token_client(world.charlie)
    client = Client()
    client.force_login(world.charlie)
    return client


@pytest.mark.parametrize("name,route,pattern", PROTECTED, ids=[r[0] for r in PROTECTED])
@pytest.mark.parametrize("method", METHODS)
def test_charlie_cannot_reach_others_objects(world, name, route, pattern, method):
    path = build_path(route, pattern, world)
    client = charlie_client(world, path)
    before = protected_state(world)
    response = call(client, method, path)
    assert response.status_code < 500, f"{method.upper()} {path} -> {response.status_code}"
    if pattern.pattern.converters:
        # An object of someone else's does not exist, as far as Charlie can tell.
        assert response.status_code in (404, 405), f"{method.upper()} {path} -> {response.status_code}"
    body = response.content.decode(errors="replace")
    for value in secrets_of_others(world):
        assert value not in body, f"{method.upper()} {path} shows Charlie {value!r}"
    assert protected_state(world) == before, f"{method.upper()} {path} let Charlie change others' data"


def test_admin_is_staff_only(world):
    anonymous = Client().get("/admin/")
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    client = Client()
    client.force_login(world.charlie)
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
