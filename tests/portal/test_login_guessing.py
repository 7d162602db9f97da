"""The per-username limit (accounts/guard.py): a guessing run spread over many addresses, each under axes'
per-address limit, is stopped for that username; the person still gets in where they signed in before,
and everyone once the cool-off passes or an operator resets the username."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.utils import timezone

from portal.accounts.guard import USERNAME_LOCKED_MESSAGE
from portal.accounts.models import SignInAddress
from tests.portal.conftest import PASSWORD
from tests.portal.test_login import WRONG, login_form, signed_in_user, token_login

LIMIT = 8
HOME = "198.51.100.7"


@pytest.fixture(autouse=True)
def small_limit(settings):
    settings.DTN_LOGIN_USERNAME_FAILURE_LIMIT = LIMIT


def guess_from_many_addresses(api, username, count=LIMIT):
    # One guess per address: axes' per-(username, address) lock never fires.
    for n in range(count):
        expected = 401 if n < LIMIT else 429
        assert token_login(api, username, WRONG, REMOTE_ADDR=f"203.0.113.{n + 1}").status_code == expected


def test_a_guessing_run_from_many_addresses_is_stopped_for_that_username(anon_api, alice):
    guess_from_many_addresses(anon_api, "alice")

    response = token_login(anon_api, "alice", PASSWORD, REMOTE_ADDR="203.0.113.200")
    assert response.status_code == 429
    assert response.json() == {"error": USERNAME_LOCKED_MESSAGE, "field": None}
    assert int(response["Retry-After"]) > 0
    # The right password is refused too: otherwise the run's lucky guess would get in.
    assert token_login(anon_api, "alice", PASSWORD, REMOTE_ADDR="192.0.2.44").status_code == 429


def test_the_page_is_locked_the_same_way(browser, anon_api, alice):
    guess_from_many_addresses(anon_api, "alice")
    client = browser()
    response = login_form(client, "alice", PASSWORD, REMOTE_ADDR="203.0.113.201")
    assert response.status_code == 429
    assert USERNAME_LOCKED_MESSAGE in response.content.decode()
    assert signed_in_user(client) is None


def test_the_person_still_gets_in_from_where_they_signed_in_before(anon_api, browser, alice):
    assert token_login(anon_api, "alice", PASSWORD, REMOTE_ADDR=HOME).status_code == 201
    guess_from_many_addresses(anon_api, "alice", LIMIT * 2)

    assert token_login(anon_api, "alice", PASSWORD, REMOTE_ADDR=HOME).status_code == 201
    client = browser()
    assert login_form(client, "alice", PASSWORD, REMOTE_ADDR=HOME).status_code == 302
    assert signed_in_user(client) == alice


def test_a_sign_in_remembers_the_address(anon_api, alice):
    token_login(anon_api, "alice", PASSWORD, REMOTE_ADDR=HOME)
    assert list(SignInAddress.objects.filter(user=alice).values_list("address", flat=True)) == [HOME]


def test_other_usernames_are_not_locked(anon_api, alice, bob):
    guess_from_many_addresses(anon_api, "alice")
    assert token_login(anon_api, "bob", PASSWORD, REMOTE_ADDR="203.0.113.1").status_code == 201


def test_an_unknown_username_is_locked_exactly_like_a_real_one(anon_api, alice):
    guess_from_many_addresses(anon_api, "alice")
    guess_from_many_addresses(anon_api, "nobody")
    real = token_login(anon_api, "alice", WRONG, REMOTE_ADDR="192.0.2.9")
    unknown = token_login(anon_api, "nobody", WRONG, REMOTE_ADDR="192.0.2.9")
    assert real.status_code == unknown.status_code == 429
    assert real.json() == unknown.json()


def test_the_lock_ends_with_the_cool_off(settings, anon_api, alice):
    guess_from_many_addresses(anon_api, "alice")
    AccessAttempt.objects.update(
        attempt_time=timezone.now() - timedelta(minutes=settings.DTN_LOGIN_COOLOFF_MINUTES + 1))
    assert token_login(anon_api, "alice", PASSWORD, REMOTE_ADDR="192.0.2.10").status_code == 201


def test_an_operator_can_lift_the_lock_at_once(anon_api, alice):
    guess_from_many_addresses(anon_api, "alice")
    call_command("axes_reset_username", "alice", verbosity=0)
    assert token_login(anon_api, "alice", PASSWORD, REMOTE_ADDR="192.0.2.11").status_code == 201
