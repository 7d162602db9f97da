"""After registering a container the page says what to do next for its role (issue 25): a ready `.env` with the
portal's address and the token, the compose command of docs/deployment.md, and a line that waits for the first
heartbeat. The token is on that one answer only, never cached, and on no page after it."""

from __future__ import annotations

import html
import re

import pytest

from portal.containers.models import Container


def register_page(client, name, role):
    response = client.post("/portal/containers/", {"name": name, "role": role, "csrfmiddlewaretoken": client.csrf()})
    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    token = re.search(r'id="agent-token">([^<]+)<', page).group(1)
    return response, page, token


@pytest.mark.parametrize(("role", "compose", "role_setting"), [
    ("sender", "docker compose -f docker-compose.sender.yml up -d --build", "SEND_FOLDER="),
    ("receiver", "docker compose -f docker-compose.receiver.yml up -d --build", "DTN_RECEIVER_HOST="),
])
def test_the_page_after_registering_gives_a_ready_env_and_the_compose_command(browser, alice, role, compose,
                                                                               role_setting):
    response, page, token = register_page(browser(alice), f"lab-{role}", role)
    env = re.search(r'<pre class="block" id="env-block"[^>]*>(.*?)</pre>', page, re.S).group(1)
    assert "DTN_PORTAL_URL=http://testserver\n" in env
    assert f"DTN_AGENT_TOKEN={token}\n" in env
    assert role_setting in env
    assert compose in page
    container = Container.objects.get(name=f"lab-{role}")
    assert f'data-url="/api/v1/containers/{container.pk}"' in page  # the live "waiting… connected" line
    assert "no-store" in response["Cache-Control"]


def test_a_sender_env_gets_its_own_rclone_password(browser, alice):
    _, first, _ = register_page(browser(alice), "one", "sender")
    _, second, _ = register_page(browser(alice), "two", "sender")
    password = re.compile(r"DTN_RCLONE_RC_PASS=([0-9a-f]{48})")
    assert password.search(first).group(1) != password.search(second).group(1)


def test_the_token_is_never_shown_again(browser, alice):
    client = browser(alice)
    _, _, token = register_page(client, "lab-dtn", "sender")
    container = Container.objects.get(name="lab-dtn")
    for path in ("/portal/containers/", f"/portal/containers/{container.pk}/", "/portal/send/"):
        assert token not in client.get(path).content.decode(), path
    assert token not in str(client.get(f"/api/v1/containers/{container.pk}").json())


def test_first_run_pages_point_at_the_next_step(browser, alice):
    client = browser(alice)
    assert "Register your first container" in client.get("/portal/containers/").content.decode()
    send = client.get("/portal/send/").content.decode()
    assert 'href="/portal/containers/"' in send


def test_a_container_never_seen_says_how_to_start_it_without_its_token(browser, alice):
    client = browser(alice)
    _, _, token = register_page(client, "lab-rx", "receiver")
    container = Container.objects.get(name="lab-rx")
    page = client.get(f"/portal/containers/{container.pk}/").content.decode()
    assert "docker compose -f docker-compose.receiver.yml up -d --build" in page and 'id="never-seen"' in page
    assert token not in page
