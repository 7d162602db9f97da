"""Signing up: the page (a POST form with CSRF) and POST /api/v1/signup."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from tests.portal.conftest import PASSWORD

User = get_user_model()
NEW_PASSWORD = "a long enough passphrase 42"


def signup_form(client, **fields):
    data = {"username": "dana", "email": "dana@example.org", "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD, "csrfmiddlewaretoken": client.csrf(), **fields}
    return client.post("/accounts/signup/", data)


# --- The page ----------------------------------------------------------------------------------


def test_the_signup_page_shows_a_form(browser):
    client = browser()
    response = client.get("/accounts/signup/")
    assert response.status_code == 200
    assert b'name="username"' in response.content
    assert b'name="csrfmiddlewaretoken"' in response.content


def test_it_creates_the_account_and_signs_the_person_in(browser):
    client = browser()
    response = signup_form(client)
    assert response.status_code == 302
    assert response["Location"] == "/portal/containers/"

    user = User.objects.get(username="dana")
    assert user.email == "dana@example.org"
    assert user.check_password(NEW_PASSWORD)
    assert user.password != NEW_PASSWORD
    assert not user.is_staff and not user.is_superuser
    assert client.get("/portal/containers/").context["user"] == user


def test_it_refuses_a_signup_post_without_the_csrf_token(browser):
    client = browser()
    response = client.post("/accounts/signup/", {"username": "dana", "password1": NEW_PASSWORD,
                                                  "password2": NEW_PASSWORD})
    assert response.status_code == 403
    assert not User.objects.filter(username="dana").exists()


def test_it_refuses_a_weak_password(browser):
    client = browser()
    response = signup_form(client, password1="short", password2="short")
    assert response.status_code == 400
    assert not User.objects.filter(username="dana").exists()


def test_it_refuses_mismatched_passwords(browser):
    client = browser()
    response = signup_form(client, password2=NEW_PASSWORD + "x")
    assert response.status_code == 400
    assert not User.objects.filter(username="dana").exists()


def test_it_refuses_a_username_that_is_taken(browser, alice):
    client = browser()
    response = signup_form(client, username="alice")
    assert response.status_code == 400
    assert User.objects.filter(username="alice").count() == 1
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


def test_a_signed_in_person_is_sent_to_their_containers(browser, alice):
    client = browser(alice)
    response = client.get("/accounts/signup/")
    assert response.status_code == 302
    assert response["Location"] == "/portal/containers/"


# --- The API -----------------------------------------------------------------------------------


def test_the_api_creates_an_account(db, anon_api):
    response = anon_api.post("/api/v1/signup", {"username": "dana", "email": "dana@example.org",
                                                "password": NEW_PASSWORD}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["username"] == "dana"
    assert "password" not in body

    user = User.objects.get(username="dana")
    assert body["id"] == user.id
    assert user.check_password(NEW_PASSWORD)


def test_the_api_refuses_a_weak_password_with_the_field(db, anon_api):
    response = anon_api.post("/api/v1/signup", {"username": "dana", "password": "dana12345"}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "password"
    assert not User.objects.filter(username="dana").exists()


def test_the_api_refuses_a_username_that_is_taken(anon_api, alice):
    response = anon_api.post("/api/v1/signup", {"username": "alice", "password": NEW_PASSWORD}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "username"
    assert User.objects.count() == 1
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


def test_the_api_cannot_make_a_staff_account(db, anon_api):
    response = anon_api.post("/api/v1/signup", {"username": "dana", "password": NEW_PASSWORD,
                                                "is_staff": True, "is_superuser": True}, format="json")
    assert response.status_code == 201
    user = User.objects.get(username="dana")
    assert not user.is_staff and not user.is_superuser
