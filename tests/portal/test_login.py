"""Signing in and out: the page (POST form, CSRF on), POST /api/v1/auth/token,
and the throttling both share."""

from __future__ import annotations

import re

import pytest
from django.conf import settings

from portal.accounts.models import PersonalToken
from portal.accounts.views import LOCKED_OUT_MESSAGE
from tests.portal.conftest import PASSWORD

WRONG = "not the password at all"


def login_form(client, username, password, **extra):
    return client.post("/accounts/login/", {"username": username, "password": password,
                                            "csrfmiddlewaretoken": client.csrf()}, **extra)


def token_login(api, username, password, **extra):
    return api.post("/api/v1/auth/token", {"username": username, "password": password}, format="json", **extra)


def signed_in_user(client):
    response = client.get("/portal/containers/")
    return response.context["user"] if response.status_code == 200 else None


# --- The page ----------------------------------------------------------------------------------


def test_it_signs_in_with_the_right_password(browser, alice):
    client = browser()
    response = login_form(client, "alice", PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == "/portal/containers/"
    assert signed_in_user(client) == alice
    alice.refresh_from_db()
    assert alice.last_login is not None


@pytest.mark.parametrize("target", ["https://evil.example.org/", "//evil.example.org/", "/\\evil.example.org"])
def test_it_never_sends_a_person_to_another_site_after_signing_in(browser, alice, target):
    client = browser()
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD, "next": target,
                                                "csrfmiddlewaretoken": client.csrf()})
    assert response.status_code == 302
    assert response["Location"] == "/portal/containers/"
    assert signed_in_user(client) == alice


def test_it_follows_a_local_next_after_signing_in(browser, alice):
    client = browser()
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD,
                                                "next": "/accounts/tokens/", "csrfmiddlewaretoken": client.csrf()})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/tokens/"


def test_it_refuses_a_login_post_without_the_csrf_token(browser, alice):
    client = browser()
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 403
    assert signed_in_user(client) is None
    alice.refresh_from_db()
    assert alice.last_login is None


def test_it_says_when_the_password_is_wrong(browser, alice):
    client = browser()
    response = login_form(client, "alice", WRONG)
    assert response.status_code == 200
    assert b"Wrong username or password." in response.content
    assert signed_in_user(client) is None


def _without_variable_parts(response, username):
    html = response.content.decode()
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "CSRF", html)
    return html.replace(username, "USERNAME")


def test_it_answers_an_unknown_user_exactly_like_a_wrong_password(browser, alice):
    wrong_password = login_form(browser(), "alice", WRONG)
    unknown_user = login_form(browser(), "nobody", WRONG)
    assert wrong_password.status_code == unknown_user.status_code == 200
    assert _without_variable_parts(wrong_password, "alice") == _without_variable_parts(unknown_user, "nobody")


def test_an_inactive_account_cannot_sign_in(browser, alice):
    alice.is_active = False
    alice.save()
    client = browser()
    response = login_form(client, "alice", PASSWORD)
    assert response.status_code == 200
    assert signed_in_user(client) is None


def test_it_locks_the_page_out_after_the_failure_limit(browser, alice):
    client = browser()
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        assert login_form(client, "alice", WRONG).status_code == 200

    response = login_form(client, "alice", WRONG)
    assert response.status_code == 429
    assert LOCKED_OUT_MESSAGE in response.content.decode()

    # Even the right password is refused until the cool-off ends.
    response = login_form(client, "alice", PASSWORD)
    assert response.status_code == 429
    assert signed_in_user(client) is None


def test_a_lockout_applies_to_one_username_from_one_address(browser, alice, bob):
    attacker = browser()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login_form(attacker, "alice", WRONG, REMOTE_ADDR="203.0.113.9")
    assert login_form(attacker, "alice", PASSWORD, REMOTE_ADDR="203.0.113.9").status_code == 429

    # Alice at her own address, and Bob at the attacker's, still get in.
    alice_browser = browser()
    assert login_form(alice_browser, "alice", PASSWORD, REMOTE_ADDR="198.51.100.7").status_code == 302
    assert signed_in_user(alice_browser) == alice
    bob_browser = browser()
    assert login_form(bob_browser, "bob", PASSWORD, REMOTE_ADDR="203.0.113.9").status_code == 302
    assert signed_in_user(bob_browser) == bob


def test_a_forged_forwarded_for_header_does_not_escape_the_lockout(browser, alice):
    client = browser()
    for n in range(settings.AXES_FAILURE_LIMIT):
        login_form(client, "alice", WRONG, HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    response = login_form(client, "alice", PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.200")
    assert response.status_code == 429
    assert signed_in_user(client) is None


def test_a_success_resets_the_failure_count(browser, alice):
    client = browser()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        login_form(client, "alice", WRONG)
    assert login_form(client, "alice", PASSWORD).status_code == 302
    client.post("/accounts/logout/", {"csrfmiddlewaretoken": client.csrf()})

    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert login_form(client, "alice", WRONG).status_code == 200
    assert login_form(client, "alice", PASSWORD).status_code == 302


# --- Logging out --------------------------------------------------------------------------------


def test_it_logs_out_with_a_post(browser, alice):
    client = browser(alice)
    response = client.post("/accounts/logout/", {"csrfmiddlewaretoken": client.csrf()})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert signed_in_user(client) is None


def test_it_refuses_to_log_out_with_a_get(browser, alice):
    client = browser(alice)
    response = client.get("/accounts/logout/")
    assert response.status_code == 405
    assert signed_in_user(client) == alice


def test_it_refuses_a_logout_post_without_the_csrf_token(browser, alice):
    client = browser(alice)
    response = client.post("/accounts/logout/")
    assert response.status_code == 403
    assert signed_in_user(client) == alice


# --- POST /api/v1/auth/token ----------------------------------------------------------------------


def test_the_api_exchanges_a_password_for_a_personal_token(anon_api, alice):
    response = token_login(anon_api, "alice", PASSWORD)
    assert response.status_code == 201
    body = response.json()
    assert body["token"].startswith("dtn_pat_")
    assert body["name"] == "cli"

    row = PersonalToken.objects.get(pk=body["id"])
    assert row.user == alice
    assert PersonalToken.authenticate(body["token"]) == row


def test_the_api_answers_an_unknown_user_exactly_like_a_wrong_password(anon_api, alice):
    wrong_password = token_login(anon_api, "alice", WRONG)
    unknown_user = token_login(anon_api, "nobody", WRONG)
    assert wrong_password.status_code == unknown_user.status_code == 401
    assert wrong_password.json() == unknown_user.json() == {"error": "wrong username or password", "field": None}
    assert PersonalToken.objects.count() == 0


def test_the_api_needs_a_password(anon_api, alice):
    response = anon_api.post("/api/v1/auth/token", {"username": "alice"}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "password"
    assert PersonalToken.objects.count() == 0


def test_the_api_locks_out_after_the_failure_limit(anon_api, alice):
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        assert token_login(anon_api, "alice", WRONG).status_code == 401

    response = token_login(anon_api, "alice", WRONG)
    assert response.status_code == 429
    assert response.json() == {"error": LOCKED_OUT_MESSAGE, "field": None}

    response = token_login(anon_api, "alice", PASSWORD)
    assert response.status_code == 429
    assert PersonalToken.objects.count() == 0


@pytest.mark.parametrize("first, then", [("page", "api"), ("api", "page")])
def test_failures_on_the_page_and_the_api_count_together(browser, anon_api, alice, first, then):
    client = browser()
    attempts = {"page": lambda: login_form(client, "alice", WRONG),
                "api": lambda: token_login(anon_api, "alice", WRONG)}
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        attempts[first]()
    assert attempts[then]().status_code == 429
