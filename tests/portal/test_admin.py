"""The admin: a superuser sees people, containers, commands and personal
tokens, and no page shows a token, a token's digest or receiver credentials."""

from __future__ import annotations

import pytest

from portal.accounts.models import PersonalToken
from portal.transfers import queue

PAYLOAD_SECRET = "s3-secret-key-that-must-not-show"


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.org", "root password 12345")


@pytest.fixture
def admin_browser(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def world(alice, alice_api, alice_sender, bob_receiver, queued):
    """Rows of every kind, with their raw tokens and digests to look for."""
    pat, raw_pat = PersonalToken.issue(alice, "laptop")
    command = queued(payload={"destination": {"access_key": "AKIAEXAMPLE", "secret_key": PAYLOAD_SECRET}})
    queue.claim_next(alice_sender, "inst-1")
    secrets = {
        "alice's personal token": raw_pat,
        "alice's personal token secret": raw_pat.split("_", 3)[3],
        "alice's personal token digest": pat.digest,
        "alice's API token": alice_api.raw_token,
        "alice's API token secret": alice_api.raw_token.split("_", 3)[3],
        "alice's API token digest": alice.personal_tokens.get(name="tests").digest,
        "alice's agent token": alice_sender.raw_token,
        "alice's agent token secret": alice_sender.raw_token.split("_", 3)[3],
        "alice's agent token digest": alice_sender.token_digest,
        "bob's agent token": bob_receiver.raw_token,
        "bob's agent token digest": bob_receiver.token_digest,
        "a receiver secret key in a payload": PAYLOAD_SECRET,
    }
    return {"alice": alice, "pat": pat, "container": alice_sender, "command": command, "secrets": secrets}


def admin_pages(world):
    return [
        "/admin/",
        "/admin/accounts/user/",
        f"/admin/accounts/user/{world['alice'].pk}/change/",
        "/admin/accounts/personaltoken/",
        f"/admin/accounts/personaltoken/{world['pat'].pk}/change/",
        "/admin/containers/container/",
        f"/admin/containers/container/{world['container'].pk}/change/",
        f"/admin/containers/container/{world['container'].pk}/delete/",
        "/admin/transfers/command/",
        f"/admin/transfers/command/{world['command'].pk}/change/",
    ]


def test_a_superuser_sees_every_list_and_change_form(admin_browser, world):
    for url in admin_pages(world):
        response = admin_browser.get(url)
        assert (url, response.status_code) == (url, 200)


def test_the_lists_show_the_rows(admin_browser, world):
    assert "alice" in admin_browser.get("/admin/accounts/user/").content.decode()
    assert "alice-dtn" in admin_browser.get("/admin/containers/container/").content.decode()
    assert str(world["command"].pk) in admin_browser.get("/admin/transfers/command/").content.decode()
    assert "laptop" in admin_browser.get("/admin/accounts/personaltoken/").content.decode()


def test_no_admin_page_shows_a_token_or_its_digest(admin_browser, world):
    leaks = []
    for url in admin_pages(world):
        page = admin_browser.get(url).content.decode()
        leaks += [f"{what} on {url}" for what, secret in world["secrets"].items() if secret in page]
    assert leaks == []


def test_the_container_form_has_no_token_fields(admin_browser, world):
    response = admin_browser.get(f"/admin/containers/container/{world['container'].pk}/change/")
    fields = response.context["adminform"].form.fields
    assert "token_digest" not in fields and "token_lookup" not in fields


def test_personal_tokens_cannot_be_added_in_the_admin(admin_browser, world):
    assert admin_browser.get("/admin/accounts/personaltoken/add/").status_code == 403


def test_a_person_who_is_not_staff_is_sent_to_the_admin_login(client, world):
    client.force_login(world["alice"])
    for url in admin_pages(world):
        response = client.get(url)
        assert (url, response.status_code) == (url, 302)
        assert response["Location"].startswith("/admin/login/")
