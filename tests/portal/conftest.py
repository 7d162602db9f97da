from __future__ import annotations

import pytest
from rest_framework.test import APIClient

PASSWORD = "correct horse battery staple"


def make_user(django_user_model, username):
    return django_user_model.objects.create_user(username=username, email=f"{username}@example.org",
                                                 password=PASSWORD)


@pytest.fixture
def alice(django_user_model):
    return make_user(django_user_model, "alice")


@pytest.fixture
def bob(django_user_model):
    return make_user(django_user_model, "bob")


@pytest.fixture
def charlie(django_user_model):
    return make_user(django_user_model, "charlie")


def token_client(user) -> APIClient:
    from portal.accounts.models import PersonalToken

    _, raw = PersonalToken.issue(user, "tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    client.raw_token = raw
    return client


@pytest.fixture
def alice_api(alice):
    return token_client(alice)


@pytest.fixture
def bob_api(bob):
    return token_client(bob)


@pytest.fixture
def charlie_api(charlie):
    return token_client(charlie)


@pytest.fixture
def anon_api():
    return APIClient()


def register(user, name, role):
    from portal.containers.models import Container

    container, token = Container.register(user, name, role)
    container.raw_token = token
    return container


def agent_client(container) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {container.raw_token}")
    return client


@pytest.fixture
def alice_sender(alice):
    return register(alice, "alice-dtn", "sender")


@pytest.fixture
def bob_receiver(bob):
    return register(bob, "bob-dtn", "receiver")


@pytest.fixture
def charlie_sender(charlie):
    return register(charlie, "charlie-dtn", "sender")


@pytest.fixture
def alice_agent(alice_sender):
    return agent_client(alice_sender)


@pytest.fixture
def charlie_agent(charlie_sender):
    return agent_client(charlie_sender)


@pytest.fixture
def queued(alice_sender):
    """Queue a command for a container (the send flow does this for real)."""
    from portal.transfers.models import Command

    def make(container=None, **fields):
        return Command.objects.create(container=container or alice_sender, **fields)

    return make


# --- Added with the foundation tests (issue 2). ---


@pytest.fixture(autouse=True, scope="session")
def _pages_render_without_collectstatic():
    """With DEBUG off the settings pick the manifest storage, whose URLs need
    `collectstatic` to have run; tests serve static files from the finders
    instead (Django's advice for tests), so every page can render."""
    from django.test import override_settings

    override = override_settings(STORAGES={
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    })
    override.enable()
    yield
    override.disable()


@pytest.fixture
def agent_threads_db(transactional_db, monkeypatch):
    """For tests that call the claim endpoint (POST /api/agent/v1/commands/next).

    Its database work runs on the server process's worker threads, which see only
    committed rows, so the test must be transactional; and each worker thread's
    connection is closed after its call, or PostgreSQL refuses to drop the test
    database at the end of the run."""
    from django.db import connection

    from portal.agentapi import waiters as waiters_module

    original = waiters_module.run_db

    def run_db_then_close(fn, *args):
        try:
            return original(fn, *args)
        finally:
            connection.close()

    monkeypatch.setattr(waiters_module, "run_db", run_db_then_close)


@pytest.fixture
def browser(db):
    """A browser-like client that enforces CSRF, optionally signed in:
    `browser(alice)`. `client.csrf()` is the token a rendered form would carry."""
    from django.conf import settings as django_settings
    from django.test import Client

    def make(user=None) -> Client:
        client = Client(enforce_csrf_checks=True)
        if user is not None:
            client.force_login(user)
        # A page with a form sets the CSRF cookie, as a browser would first load it.
        client.get("/accounts/tokens/" if user is not None else "/accounts/login/")
        client.csrf = lambda: client.cookies[django_settings.CSRF_COOKIE_NAME].value
        return client

    return make
