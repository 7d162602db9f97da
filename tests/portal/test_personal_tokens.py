"""Personal API tokens: create, list, revoke (API and page); shown once; stored
as keyed hashes; one 401 for every bad token; never interchangeable with an
agent token."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import pytest
from django.conf import settings
from django.forms.models import model_to_dict
from django.utils import timezone
from rest_framework.test import APIClient

from portal.accounts.models import PersonalToken

INVALID = {"error": "invalid API token", "field": None}


def bearer_client(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def secret_of(raw: str) -> str:
    """The secret part of `dtn_pat_<lookup>_<secret>` (the secret may itself hold '_')."""
    return raw.split("_", 3)[3]


# --- Create -----------------------------------------------------------------------------------------


def test_it_creates_a_token_and_shows_it_once(alice_api, alice):
    response = alice_api.post("/api/v1/tokens", {"name": "laptop"}, format="json")
    assert response.status_code == 201
    body = response.json()
    raw = body["token"]
    assert raw.startswith("dtn_pat_")
    assert body["name"] == "laptop"
    assert body["prefix"] == raw[: len("dtn_pat_") + 12] + "…"

    row = PersonalToken.objects.get(pk=body["id"])
    assert row.user == alice
    assert bearer_client(raw).get("/api/v1/me").json()["username"] == "alice"


def test_the_stored_row_holds_a_keyed_hash_not_the_token(alice_api):
    raw = alice_api.post("/api/v1/tokens", {"name": "laptop"}, format="json").json()["token"]
    lookup, secret = raw[len("dtn_pat_"):].split("_", 1)
    row = PersonalToken.objects.get(lookup=lookup)

    stored = " ".join(str(value) for value in model_to_dict(row).values())
    assert raw not in stored
    assert secret not in stored
    assert row.digest == hmac.new(settings.TOKEN_HMAC_KEY.encode(), secret.encode(), hashlib.sha256).hexdigest()
    assert row.digest != hashlib.sha256(secret.encode()).hexdigest()
    assert row.digest != hashlib.sha256(raw.encode()).hexdigest()


def test_the_list_never_contains_a_token(alice_api, alice):
    raw = alice_api.post("/api/v1/tokens", {"name": "laptop"}, format="json").json()["token"]
    response = alice_api.get("/api/v1/tokens")
    assert response.status_code == 200
    assert raw not in response.content.decode()
    assert secret_of(raw) not in response.content.decode()
    assert all("token" not in item for item in response.json()["results"])
    assert sorted(item["name"] for item in response.json()["results"]) == ["laptop", "tests"]

    detail = alice_api.get(f"/api/v1/tokens/{response.json()['results'][0]['id']}")
    assert detail.status_code == 200
    assert "token" not in detail.json()


def test_the_list_shows_only_my_tokens(alice_api, bob_api):
    bob_api.post("/api/v1/tokens", {"name": "bob's laptop"}, format="json")
    names = [item["name"] for item in alice_api.get("/api/v1/tokens").json()["results"]]
    assert names == ["tests"]


def test_a_token_needs_a_name(alice_api, alice):
    response = alice_api.post("/api/v1/tokens", {"name": ""}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "name"
    assert alice.personal_tokens.count() == 1


def test_creating_a_token_needs_authentication(db, anon_api):
    response = anon_api.post("/api/v1/tokens", {"name": "x"}, format="json")
    assert response.status_code == 401
    assert PersonalToken.objects.count() == 0


def test_a_session_without_csrf_cannot_create_a_token(alice):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post("/api/v1/tokens", {"name": "sneaky"}, format="json")
    assert response.status_code == 403
    assert alice.personal_tokens.count() == 0


# --- Use ----------------------------------------------------------------------------------------------


def test_using_a_token_records_when_it_was_last_used(alice_api, alice):
    row = alice.personal_tokens.get()
    assert row.last_used_at is None
    assert alice_api.get("/api/v1/me").status_code == 200
    row.refresh_from_db()
    assert row.last_used_at is not None


def test_last_used_is_written_at_most_once_a_minute(alice_api, alice):
    row = alice.personal_tokens.get()
    recent = timezone.now() - timedelta(seconds=30)
    PersonalToken.objects.filter(pk=row.pk).update(last_used_at=recent)
    alice_api.get("/api/v1/me")
    row.refresh_from_db()
    assert row.last_used_at == recent

    old = timezone.now() - timedelta(minutes=5)
    PersonalToken.objects.filter(pk=row.pk).update(last_used_at=old)
    alice_api.get("/api/v1/me")
    row.refresh_from_db()
    assert row.last_used_at > old


def test_a_deactivated_persons_token_gets_401(alice_api, alice):
    alice.is_active = False
    alice.save()
    response = alice_api.get("/api/v1/me")
    assert response.status_code == 401
    assert response.json() == INVALID


# --- Revoke --------------------------------------------------------------------------------------------


def test_a_revoked_token_gets_401(alice_api, alice):
    other = alice_api.post("/api/v1/tokens", {"name": "laptop"}, format="json").json()
    response = alice_api.delete(f"/api/v1/tokens/{other['id']}")
    assert response.status_code == 204
    assert not PersonalToken.objects.filter(pk=other["id"]).exists()

    response = bearer_client(other["token"]).get("/api/v1/me")
    assert response.status_code == 401
    assert response.json() == INVALID
    # The token that revoked it still works.
    assert alice_api.get("/api/v1/me").status_code == 200


def test_a_token_can_revoke_itself(alice_api, alice):
    own = alice.personal_tokens.get()
    assert alice_api.delete(f"/api/v1/tokens/{own.pk}").status_code == 204
    assert alice_api.get("/api/v1/me").status_code == 401
    assert alice.personal_tokens.count() == 0


def test_i_cannot_revoke_someone_elses_token(alice_api, bob_api, bob):
    bobs = bob.personal_tokens.get()
    response = alice_api.delete(f"/api/v1/tokens/{bobs.pk}")
    assert response.status_code == 404
    assert PersonalToken.objects.filter(pk=bobs.pk).exists()
    assert alice_api.get(f"/api/v1/tokens/{bobs.pk}").status_code == 404
    assert bob_api.get("/api/v1/me").status_code == 200


def test_revoking_needs_authentication(anon_api, alice_api, alice):
    own = alice.personal_tokens.get()
    assert anon_api.delete(f"/api/v1/tokens/{own.pk}").status_code == 401
    assert PersonalToken.objects.filter(pk=own.pk).exists()


# --- Bad tokens ---------------------------------------------------------------------------------------


@pytest.fixture
def alice_raw(alice_api):
    return alice_api.raw_token


@pytest.mark.parametrize("mangle", [
    pytest.param(lambda raw: "dtn_xxx_" + raw[len("dtn_pat_"):], id="wrong prefix"),
    pytest.param(lambda raw: raw[:-4] + ("AAAA" if not raw.endswith("AAAA") else "BBBB"), id="wrong secret"),
    pytest.param(lambda raw: "dtn_pat_000000000000_" + secret_of(raw), id="unknown lookup"),
    pytest.param(lambda raw: "dtn_pat_", id="prefix only"),
    pytest.param(lambda raw: raw.replace("_", "-"), id="malformed"),
    pytest.param(lambda raw: raw + "x", id="secret with an extra character"),
])
def test_every_bad_token_gets_the_same_401(alice_raw, mangle):
    response = bearer_client(mangle(alice_raw)).get("/api/v1/me")
    assert response.status_code == 401
    assert response.json() == INVALID
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_without_a_token_it_asks_for_authentication(db, anon_api):
    response = anon_api.get("/api/v1/me")
    assert response.status_code == 401
    assert response.json()["field"] is None


def test_an_agent_token_is_not_a_personal_token(alice_sender):
    response = bearer_client(alice_sender.raw_token).get("/api/v1/containers")
    assert response.status_code == 401
    assert response.json() == INVALID


def test_a_personal_token_is_not_an_agent_token(alice_api, alice_sender):
    response = alice_api.post("/api/agent/v1/heartbeat", {"agent_version": "x"}, format="json")
    assert response.status_code == 401
    assert response.json() == {"error": "invalid agent token", "field": None}
    alice_sender.refresh_from_db()
    assert alice_sender.last_seen_at is None


def test_a_personal_token_with_an_agent_tokens_secret_is_refused(alice_sender):
    lookup_and_secret = alice_sender.raw_token[len("dtn_agent_"):]
    response = bearer_client("dtn_pat_" + lookup_and_secret).get("/api/v1/me")
    assert response.status_code == 401
    assert response.json() == INVALID


# --- The page ----------------------------------------------------------------------------------------


def test_the_page_creates_a_token_and_shows_it_once(browser, alice):
    client = browser(alice)
    response = client.post("/accounts/tokens/", {"name": "laptop", "csrfmiddlewaretoken": client.csrf()})
    assert response.status_code == 200
    raw = response.context["new_token"]
    assert raw.startswith("dtn_pat_")
    assert raw in response.content.decode()
    row = alice.personal_tokens.get(name="laptop")
    assert PersonalToken.authenticate(raw) == row

    again = client.get("/accounts/tokens/")
    assert raw not in again.content.decode()
    assert secret_of(raw) not in again.content.decode()
    assert row.display_prefix in again.content.decode()


def test_the_page_refuses_a_post_without_the_csrf_token(browser, alice):
    client = browser(alice)
    response = client.post("/accounts/tokens/", {"name": "laptop"})
    assert response.status_code == 403
    assert alice.personal_tokens.count() == 0


def test_the_page_lists_only_my_tokens(browser, alice, bob):
    PersonalToken.issue(bob, "bob-secret-laptop")
    PersonalToken.issue(alice, "alice-laptop")
    body = browser(alice).get("/accounts/tokens/").content.decode()
    assert "alice-laptop" in body
    assert "bob-secret-laptop" not in body


def test_the_page_revokes_a_token(browser, alice):
    row, raw = PersonalToken.issue(alice, "laptop")
    client = browser(alice)
    response = client.post(f"/accounts/tokens/{row.pk}/revoke", {"csrfmiddlewaretoken": client.csrf()})
    assert response.status_code == 302
    assert not PersonalToken.objects.filter(pk=row.pk).exists()
    assert bearer_client(raw).get("/api/v1/me").status_code == 401


def test_the_page_cannot_revoke_someone_elses_token(browser, alice, bob):
    row, raw = PersonalToken.issue(bob, "laptop")
    client = browser(alice)
    response = client.post(f"/accounts/tokens/{row.pk}/revoke", {"csrfmiddlewaretoken": client.csrf()})
    assert response.status_code == 404
    assert PersonalToken.objects.filter(pk=row.pk).exists()
    assert bearer_client(raw).get("/api/v1/me").status_code == 200


def test_the_page_revokes_only_with_a_post(browser, alice):
    row, _ = PersonalToken.issue(alice, "laptop")
    response = browser(alice).get(f"/accounts/tokens/{row.pk}/revoke")
    assert response.status_code == 405
    assert PersonalToken.objects.filter(pk=row.pk).exists()


def test_the_page_needs_a_signed_in_person(browser):
    response = browser().get("/accounts/tokens/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("raw", ["dtn_xxx_0123456789ab_secret", "dtn_pat_0123456789ab_secret", "dtn_pat_", "x"])
def test_every_bad_token_costs_one_hmac(monkeypatch, db, raw):
    """Timing must not tell a wrong prefix from an unknown lookup or a wrong secret."""
    from portal.lib import tokens

    calls = []
    real = tokens.digest
    monkeypatch.setattr(tokens, "digest", lambda secret: calls.append(secret) or real(secret))
    assert bearer_client(raw).get("/api/v1/me").status_code == 401
    assert len(calls) == 1
