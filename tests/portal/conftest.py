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
