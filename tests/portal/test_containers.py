"""A person's containers: the list (page and GET /api/v1/containers), the
detail, rotating the agent token and deleting a container."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient

from portal.containers.models import MISSED_HEARTBEATS_OFFLINE, Container
from portal.transfers.models import Command

INVALID_AGENT = {"error": "invalid agent token", "field": None}


def heartbeat_with(raw_token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_token}")
    return client.post("/api/agent/v1/heartbeat", {}, format="json")


def seen(container, ago: timedelta, **fields):
    Container.objects.filter(pk=container.pk).update(last_seen_at=timezone.now() - ago, **fields)
    container.refresh_from_db()
    return container


def offline_after() -> timedelta:
    return timedelta(seconds=settings.DTN_HEARTBEAT_SECONDS * MISSED_HEARTBEATS_OFFLINE)


# --- The API list ----------------------------------------------------------------------------------


def test_the_api_lists_only_my_containers(alice_api, alice_sender, bob_receiver, charlie_sender):
    response = alice_api.get("/api/v1/containers")
    assert response.status_code == 200
    assert [item["container_id"] for item in response.json()["results"]] == [str(alice_sender.id)]


def test_the_api_list_reports_role_status_versions_and_endpoint(bob_api, bob_receiver):
    seen(bob_receiver, timedelta(seconds=5), agent_version="0.1.0", rclone_version="v1.75.2",
         endpoint="https://bob-dtn.example.org:9443", disk_free_bytes=123456789, hostname="bob-host")
    [item] = bob_api.get("/api/v1/containers").json()["results"]
    assert item["name"] == "bob-dtn"
    assert item["role"] == "receiver"
    assert item["online"] is True
    assert item["last_seen_at"] is not None
    assert item["agent_version"] == "0.1.0"
    assert item["rclone_version"] == "v1.75.2"
    assert item["endpoint"] == "https://bob-dtn.example.org:9443"
    assert item["disk_free_bytes"] == 123456789
    assert item["hostname"] == "bob-host"
    assert "token_digest" not in item and "token_lookup" not in item


def test_a_container_never_seen_is_offline(alice_api, alice_sender):
    [item] = alice_api.get("/api/v1/containers").json()["results"]
    assert item["online"] is False
    assert item["last_seen_at"] is None


def test_a_container_is_online_just_inside_the_missed_heartbeats_window(alice_api, alice_sender):
    seen(alice_sender, offline_after() - timedelta(seconds=5))
    assert alice_api.get("/api/v1/containers").json()["results"][0]["online"] is True


def test_a_container_is_offline_after_missing_three_heartbeats(alice_api, alice_sender):
    seen(alice_sender, offline_after() + timedelta(seconds=1))
    assert alice_api.get("/api/v1/containers").json()["results"][0]["online"] is False


def test_the_offline_window_follows_the_heartbeat_setting(settings, alice_api, alice_sender):
    seen(alice_sender, timedelta(seconds=20))
    settings.DTN_HEARTBEAT_SECONDS = 15
    assert alice_api.get("/api/v1/containers").json()["results"][0]["online"] is True
    settings.DTN_HEARTBEAT_SECONDS = 5
    assert alice_api.get("/api/v1/containers").json()["results"][0]["online"] is False


def test_listing_needs_authentication(anon_api, alice_sender):
    assert anon_api.get("/api/v1/containers").status_code == 401


# --- The API detail -----------------------------------------------------------------------------------


def test_the_api_shows_my_container(alice_api, alice_sender):
    response = alice_api.get(f"/api/v1/containers/{alice_sender.id}")
    assert response.status_code == 200
    assert response.json()["container_id"] == str(alice_sender.id)


def test_the_api_hides_someone_elses_container(charlie_api, alice_sender):
    response = charlie_api.get(f"/api/v1/containers/{alice_sender.id}")
    assert response.status_code == 404
    assert response.json()["field"] is None


# --- The page -------------------------------------------------------------------------------------------


def test_the_page_lists_my_containers_with_their_status(browser, alice, alice_sender, charlie_sender):
    receiver = Container.register(alice, "alice-rx", "receiver")[0]
    seen(receiver, timedelta(seconds=3), agent_version="0.1.0", rclone_version="v1.75.2",
         endpoint="https://alice-rx.example.org:9443")
    seen(alice_sender, offline_after() + timedelta(minutes=1), agent_version="0.0.9",
         endpoint="https://should-not-show.example.org")

    response = browser(alice).get("/portal/containers/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "alice-dtn" in page and "alice-rx" in page
    assert "charlie-dtn" not in page
    assert str(charlie_sender.id) not in page
    assert "receiver" in page and "sender" in page
    assert "agent 0.1.0" in page and "rclone v1.75.2" in page
    assert "https://alice-rx.example.org:9443" in page
    # Only receivers show an endpoint.
    assert "should-not-show" not in page
    assert page.count('class="badge online"') == 1
    assert page.count('class="badge offline"') == 1
    assert receiver.last_seen_at.strftime("%Y-%m-%d %H:%M:%S") in page


def test_the_page_needs_a_signed_in_person(browser):
    response = browser().get("/portal/containers/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_detail_page_shows_my_container(browser, alice, alice_sender, queued):
    command = queued()
    response = browser(alice).get(f"/portal/containers/{alice_sender.id}/")
    assert response.status_code == 200
    page = response.content.decode()
    assert str(alice_sender.id) in page
    assert str(command.id) in page
    assert alice_sender.token_digest not in page


def test_the_detail_page_hides_someone_elses_container(browser, charlie, alice_sender):
    response = browser(charlie).get(f"/portal/containers/{alice_sender.id}/")
    assert response.status_code == 404


# --- Rotate the agent token ---------------------------------------------------------------------------------


def test_rotating_makes_the_old_token_fail_and_the_new_one_work(alice_api, alice_sender):
    old_digest = alice_sender.token_digest
    response = alice_api.post(f"/api/v1/containers/{alice_sender.id}/rotate-token")
    assert response.status_code == 200
    body = response.json()
    assert body["container_id"] == str(alice_sender.id)
    new_token = body["agent_token"]
    assert new_token.startswith("dtn_agent_")
    assert new_token != alice_sender.raw_token

    alice_sender.refresh_from_db()
    assert alice_sender.token_digest != old_digest
    assert new_token not in alice_sender.token_digest

    old = heartbeat_with(alice_sender.raw_token)
    assert old.status_code == 401
    assert old.json() == INVALID_AGENT
    assert heartbeat_with(new_token).status_code == 200


def test_rotating_is_recorded(alice_api, alice_sender):
    before = alice_sender.token_rotated_at
    alice_api.post(f"/api/v1/containers/{alice_sender.id}/rotate-token")
    alice_sender.refresh_from_db()
    assert alice_sender.token_rotated_at > before


def test_i_cannot_rotate_someone_elses_token(charlie_api, alice_sender):
    digest = alice_sender.token_digest
    response = charlie_api.post(f"/api/v1/containers/{alice_sender.id}/rotate-token")
    assert response.status_code == 404
    assert "agent_token" not in response.json()
    alice_sender.refresh_from_db()
    assert alice_sender.token_digest == digest
    assert heartbeat_with(alice_sender.raw_token).status_code == 200


def test_rotating_needs_authentication(anon_api, alice_sender):
    digest = alice_sender.token_digest
    assert anon_api.post(f"/api/v1/containers/{alice_sender.id}/rotate-token").status_code == 401
    alice_sender.refresh_from_db()
    assert alice_sender.token_digest == digest


def test_an_agent_cannot_rotate_its_own_token(alice_agent, alice_sender):
    digest = alice_sender.token_digest
    assert alice_agent.post(f"/api/v1/containers/{alice_sender.id}/rotate-token").status_code == 401
    alice_sender.refresh_from_db()
    assert alice_sender.token_digest == digest


def test_the_page_rotates_and_shows_the_new_token_once(browser, alice, alice_sender):
    client = browser(alice)
    response = client.post(f"/portal/containers/{alice_sender.id}/rotate-token",
                           {"csrfmiddlewaretoken": client.csrf()})
    assert response.status_code == 200
    new_token = response.context["new_token"]
    assert new_token in response.content.decode()
    alice_sender.refresh_from_db()
    assert Container.authenticate(new_token) == alice_sender
    assert heartbeat_with(alice_sender.raw_token).status_code == 401

    again = client.get(f"/portal/containers/{alice_sender.id}/")
    assert new_token not in again.content.decode()


def test_the_page_rotates_only_with_a_post_and_csrf(browser, alice, alice_sender):
    client = browser(alice)
    assert client.get(f"/portal/containers/{alice_sender.id}/rotate-token").status_code == 405
    assert client.post(f"/portal/containers/{alice_sender.id}/rotate-token").status_code == 403
    assert heartbeat_with(alice_sender.raw_token).status_code == 200


def test_the_page_cannot_rotate_someone_elses_token(browser, charlie, alice_sender):
    client = browser(charlie)
    response = client.post(f"/portal/containers/{alice_sender.id}/rotate-token",
                           {"csrfmiddlewaretoken": client.csrf()})
    assert response.status_code == 404
    assert heartbeat_with(alice_sender.raw_token).status_code == 200


# --- Delete ------------------------------------------------------------------------------------------------


def test_deleting_a_container_stops_its_token(alice_api, alice_sender, queued):
    queued()
    response = alice_api.delete(f"/api/v1/containers/{alice_sender.id}")
    assert response.status_code == 204
    assert not Container.objects.filter(pk=alice_sender.pk).exists()
    assert Command.objects.filter(container_id=alice_sender.pk).count() == 0

    response = heartbeat_with(alice_sender.raw_token)
    assert response.status_code == 401
    assert response.json() == INVALID_AGENT


def test_i_cannot_delete_someone_elses_container(charlie_api, alice_sender):
    response = charlie_api.delete(f"/api/v1/containers/{alice_sender.id}")
    assert response.status_code == 404
    assert Container.objects.filter(pk=alice_sender.pk).exists()
    assert heartbeat_with(alice_sender.raw_token).status_code == 200


def test_deleting_needs_authentication(anon_api, alice_sender):
    assert anon_api.delete(f"/api/v1/containers/{alice_sender.id}").status_code == 401
    assert Container.objects.filter(pk=alice_sender.pk).exists()


def test_the_page_deletes_a_container(browser, alice, alice_sender):
    client = browser(alice)
    response = client.post(f"/portal/containers/{alice_sender.id}/delete", {"csrfmiddlewaretoken": client.csrf()})
    assert response.status_code == 302
    assert response["Location"] == "/portal/containers/"
    assert not Container.objects.filter(pk=alice_sender.pk).exists()
    assert heartbeat_with(alice_sender.raw_token).status_code == 401


@pytest.mark.parametrize("method", ["get", "post_without_csrf"])
def test_the_page_deletes_only_with_a_post_and_csrf(browser, alice, alice_sender, method):
    client = browser(alice)
    url = f"/portal/containers/{alice_sender.id}/delete"
    response = client.get(url) if method == "get" else client.post(url)
    assert response.status_code in (403, 405)
    assert Container.objects.filter(pk=alice_sender.pk).exists()


def test_the_page_cannot_delete_someone_elses_container(browser, charlie, alice_sender):
    client = browser(charlie)
    response = client.post(f"/portal/containers/{alice_sender.id}/delete", {"csrfmiddlewaretoken": client.csrf()})
    assert response.status_code == 404
    assert Container.objects.filter(pk=alice_sender.pk).exists()


TUNED_TCP = {"congestion_control": "bbr", "default_congestion_control": "cubic",
             "tcp_rmem": [4096, 131072, 67108864], "tcp_wmem": [4096, 65536, 67108864],
             "tuned": {"congestion_control": True, "tcp_rmem": True, "tcp_wmem": True}}


def test_the_tcp_an_agent_reports_is_shown_on_its_page_and_in_the_api(browser, alice, alice_api, alice_sender):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {alice_sender.raw_token}")
    assert client.post("/api/agent/v1/heartbeat", {"health": {"tcp": TUNED_TCP}}, format="json").status_code == 200
    row = alice_api.get(f"/api/v1/containers/{alice_sender.id}").json()
    assert row["tcp"] == {"congestion_control": "bbr", "buffer_limit_bytes": 64 * 1024 * 1024,
                          "tuned": {"congestion_control": True, "tcp_rmem": True, "tcp_wmem": True}}
    page = browser(alice).get(f"/portal/containers/{alice_sender.id}/").content.decode()
    assert ">tuned for long paths<" in page and "buffers up to 64.0" in page

    untuned = {**TUNED_TCP, "congestion_control": "cubic", "tcp_wmem": [4096, 16384, 4194304],
               "tuned": {"congestion_control": False, "tcp_rmem": True, "tcp_wmem": False}}
    assert client.post("/api/agent/v1/heartbeat", {"health": {"tcp": untuned}}, format="json").status_code == 200
    assert alice_api.get(f"/api/v1/containers/{alice_sender.id}").json()["tcp"]["buffer_limit_bytes"] == 4194304
    page = browser(alice).get(f"/portal/containers/{alice_sender.id}/").content.decode()
    assert ">tuned for long paths<" not in page and "Not tuned for long paths" in page


@pytest.mark.parametrize("tcp", [None, "bbr", {"congestion_control": 7}, {"congestion_control": "bbr", "tuned": []}])
def test_a_tcp_report_of_the_wrong_shape_is_shown_as_unknown_or_not_tuned(alice_api, alice_sender, tcp):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {alice_sender.raw_token}")
    assert client.post("/api/agent/v1/heartbeat", {"health": {"tcp": tcp}}, format="json").status_code == 200
    shown = alice_api.get(f"/api/v1/containers/{alice_sender.id}").json()["tcp"]
    assert shown is None or (shown["tuned"] == {"congestion_control": False, "tcp_rmem": False, "tcp_wmem": False}
                             and shown["buffer_limit_bytes"] is None)
