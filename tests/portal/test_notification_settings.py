"""Notification settings, on the page and through the API: validated, one row
per person made on first change, and a webhook signing secret shown once and
kept encrypted."""

from __future__ import annotations

import re

import pytest

from portal.lib import crypto
from portal.notifications.models import NotificationSettings

API = "/api/v1/notifications/settings"
PAGE = "/portal/notifications/"
HOOK = "https://hooks.example.org/dtn/abc"


def test_the_defaults_mail_every_event_and_no_webhook_without_writing_a_row(alice_api, alice):
    body = alice_api.get(API).json()
    assert body["email_address"] == "alice@example.org"
    assert (body["email_succeeded"], body["email_failed"], body["email_stall"]) == (True, True, True)
    assert body["webhook_url"] == "" and body["webhook_secret_set"] is False
    assert "webhook_secret" not in body
    assert not NotificationSettings.objects.filter(user=alice).exists()


def test_a_first_webhook_url_answers_its_signing_secret_once(alice_api, alice):
    answer = alice_api.patch(API, {"webhook_url": HOOK, "email_stall": False}, format="json")
    assert answer.status_code == 200, answer.content
    secret = answer.json()["webhook_secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert answer.json()["webhook_secret_set"] is True and answer.json()["email_stall"] is False

    # Never again: not on reading, not on the next change.
    assert "webhook_secret" not in alice_api.get(API).json()
    again = alice_api.patch(API, {"webhook_url": HOOK + "x"}, format="json").json()
    assert "webhook_secret" not in again
    assert secret not in alice_api.get(API).content.decode()

    # Kept encrypted: the column holds ciphertext that opens to the secret.
    row = NotificationSettings.objects.get(user=alice)
    assert secret not in row.webhook_secret_encrypted
    assert crypto.decrypt(row.webhook_secret_encrypted) == secret


def test_rotating_answers_a_new_secret_that_replaces_the_old(alice_api, alice):
    first = alice_api.put(API, {"webhook_url": HOOK}, format="json").json()["webhook_secret"]
    rotated = alice_api.post("/api/v1/notifications/webhook-secret")
    assert rotated.status_code == 201
    second = rotated.json()["webhook_secret"]
    assert second != first
    assert NotificationSettings.objects.get(user=alice).webhook_secret() == second


@pytest.mark.parametrize("url,words", [
    ("ftp://hooks.example.org/x", "http:// or https://"),
    ("javascript:alert(1)", "http:// or https://"),
    ("https://user:pw@hooks.example.org/x", "passwords in the URL"),
    ("https:///nohost", "no host"),
    ("https://hooks.example.org:99999/x", "port"),
    ("https://hooks.example.org/a b", "spaces"),
    ("http://127.0.0.1:8080/x", "private"),
    ("http://[::1]/x", "private"),
    ("http://169.254.169.254/latest/meta-data", "private"),
    ("http://10.1.2.3/x", "private"),
    ("https://hooks.example.org/" + "a" * 2000, "2000"),
])
def test_an_unusable_webhook_url_is_refused_naming_the_field(alice_api, alice, url, words):
    answer = alice_api.patch(API, {"webhook_url": url}, format="json")
    assert answer.status_code == 400
    assert answer.json()["field"] == "webhook_url"
    assert words in answer.json()["error"]
    assert not NotificationSettings.objects.filter(user=alice, webhook_url=url).exists()


def test_private_addresses_are_accepted_where_the_operator_allows_them(alice_api, settings):
    settings.DTN_WEBHOOK_ALLOW_PRIVATE = True
    assert alice_api.patch(API, {"webhook_url": "http://127.0.0.1:8080/x"}, format="json").status_code == 200


def test_bad_values_are_refused_and_change_nothing(alice_api, alice):
    for body, field in (({"email_address": "not an address"}, "email_address"),
                        ({"email_failed": "perhaps"}, "email_failed")):
        answer = alice_api.patch(API, body, format="json")
        assert answer.status_code == 400 and answer.json()["field"] == field, answer.content
    alice.refresh_from_db()
    assert alice.email == "alice@example.org"


def test_the_email_address_is_the_accounts(alice_api, alice):
    alice_api.patch(API, {"email_address": "a.lab@example.org"}, format="json")
    alice.refresh_from_db()
    assert alice.email == "a.lab@example.org"


def test_a_test_notification_needs_somewhere_to_go(alice_api, alice):
    alice.email = ""
    alice.save()
    answer = alice_api.post("/api/v1/notifications/test")
    assert answer.status_code == 400 and "nothing to test" in answer.json()["error"]
    alice_api.patch(API, {"webhook_url": HOOK, "email_address": "alice@example.org"}, format="json")
    answer = alice_api.post("/api/v1/notifications/test")
    assert answer.status_code == 202
    assert sorted(d["channel"] for d in answer.json()) == ["email", "webhook"]
    listed = alice_api.get("/api/v1/notifications/deliveries").json()["results"]
    assert {d["delivery_id"] for d in listed} == {d["delivery_id"] for d in answer.json()}
    assert all(d["status"] == "pending" and d["event"] == "test" for d in listed)


def test_deliveries_list_only_your_own(alice_api, bob_api):
    alice_api.post("/api/v1/notifications/test")
    assert alice_api.get("/api/v1/notifications/deliveries").json()["count"] == 1
    assert bob_api.get("/api/v1/notifications/deliveries").json()["results"] == []


# --- the page ---------------------------------------------------------------

def _form_data(**changes):
    data = {"email_address": "alice@example.org", "email_succeeded": "on", "email_failed": "on",
            "email_stall": "on", "webhook_url": "", "webhook_succeeded": "on", "webhook_failed": "on",
            "webhook_stall": "on"}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_the_page_is_in_the_nav_and_labels_every_input(browser, alice):
    client = browser(alice)
    html = client.get(PAGE).content.decode()
    assert 'href="/portal/notifications/"' in client.get("/portal/transfers/").content.decode()
    for name in ("email_address", "email_succeeded", "email_failed", "email_stall", "webhook_url",
                 "webhook_succeeded", "webhook_failed", "webhook_stall"):
        assert re.search(rf'<label for="id_{name}">[^<]+</label>', html), name
    assert "Nothing sent yet." in html


def test_the_page_saves_and_shows_the_secret_once(browser, alice):
    client = browser(alice)
    answer = client.post(PAGE, _form_data(webhook_url=HOOK, email_stall=None, csrfmiddlewaretoken=client.csrf()))
    assert answer.status_code == 200
    html = answer.content.decode()
    secret = re.search(r'<code id="webhook-secret">(whsec_[^<]+)</code>', html).group(1)
    prefs = NotificationSettings.objects.get(user=alice)
    assert prefs.webhook_url == HOOK and prefs.email_stall is False and prefs.webhook_secret() == secret
    assert secret not in client.get(PAGE).content.decode()
    # A later save redirects and shows no secret.
    again = client.post(PAGE, _form_data(webhook_url=HOOK, csrfmiddlewaretoken=client.csrf()))
    assert again.status_code == 302

    rotated = client.post("/portal/notifications/webhook-secret", {"csrfmiddlewaretoken": client.csrf()})
    new = re.search(r'<code id="webhook-secret">(whsec_[^<]+)</code>', rotated.content.decode()).group(1)
    assert new != secret and NotificationSettings.objects.get(user=alice).webhook_secret() == new


def test_the_page_puts_the_error_next_to_the_url_and_keeps_the_input(browser, alice):
    client = browser(alice)
    answer = client.post(PAGE, _form_data(webhook_url="ftp://hooks.example.org/x", csrfmiddlewaretoken=client.csrf()))
    assert answer.status_code == 400
    html = answer.content.decode()
    # Next to the field: after its input, before the next field's label.
    after_input = html[html.index('name="webhook_url"'):]
    assert "http:// or https://" in after_input[:after_input.index("<label")]
    assert 'value="ftp://hooks.example.org/x"' in html
    assert not NotificationSettings.objects.filter(user=alice).exists()


def test_the_page_test_button_queues_a_delivery(browser, alice):
    client = browser(alice)
    answer = client.post("/portal/notifications/test", {"csrfmiddlewaretoken": client.csrf()}, follow=True)
    html = answer.content.decode()
    assert "Test notification queued (email)" in html
    assert alice.deliveries.count() == 1
    assert "pending" in html


def test_the_admin_shows_neither_the_secret_nor_its_ciphertext(client, django_user_model, alice):
    from portal.notifications import services

    prefs, secret = services.update(alice, {"webhook_url": HOOK})
    root = django_user_model.objects.create_superuser("root", "root@example.org", "root password 12345")
    client.force_login(root)
    for path in ("/admin/notifications/notificationsettings/",
                 f"/admin/notifications/notificationsettings/{alice.pk}/change/"):
        response = client.get(path)
        html = response.content.decode()
        assert response.status_code == 200
        assert secret not in html and prefs.webhook_secret_encrypted not in html
