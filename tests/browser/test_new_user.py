"""Issue 25's done-when, at 390 px and at 1280 px: a new person signs up, registers a receiver and a sender, sees
each one's ready .env, starts the agents with the tokens the pages showed and watches both come online, grants
herself, sends from the two-pane send page with the receiver chosen by name, and watches the transfer succeed.
Every page on the way is no wider than the viewport and has no axe-core violation."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import PASSWORD, Person, assert_accessible, new_context, screenshot
from tests.browser.test_small_screens import LAPTOP, PHONE, fits
from tests.harness import Agent, wait_for, write_random
from tests.tools.net import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def looked_at(page: Page, what: str) -> None:
    fits(page, what)
    assert_accessible(page, f"{what} at {page.viewport_size['width']} px")


def register_and_start(page: Page, name: str, role: str, start) -> Agent:
    page.goto("/portal/containers/")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Role").select_option(role)
    page.get_by_role("button", name="Register").click()
    token = page.locator("#agent-token").inner_text().strip()
    expect(page.locator("#env-block")).to_contain_text(f"DTN_AGENT_TOKEN={token}")
    expect(page.locator("#commands-block")).to_contain_text(f"docker compose -f docker-compose.{role}.yml up -d")
    expect(page.locator("#connection")).to_contain_text("Waiting for your container")
    looked_at(page, f"the {role}'s next steps")
    agent = start(token)
    expect(page.locator("#connection")).to_contain_text(f"Connected: {name} is online", timeout=40_000)
    return agent


@pytest.mark.parametrize("viewport", [PHONE, LAPTOP], ids=["390px", "1280px"])
def test_a_new_person_gets_from_sign_up_to_a_verified_transfer(world, chromium, tmp_path, viewport):
    name = f"erin{viewport['width']}"
    context = new_context(chromium, world.portal)
    page = context.new_page()
    page.set_viewport_size(viewport)
    person = Person(name, context, page)
    agents: list[Agent] = []
    try:
        page.goto("/accounts/signup/")
        looked_at(page, "the sign-up page")
        page.get_by_label("Username").fill(name)
        page.get_by_label("Email").fill(f"{name}@example.org")
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_label("Password confirmation").fill(PASSWORD)
        page.get_by_role("button", name="Create account").click()
        expect(page.locator("#first-steps")).to_contain_text("Register your first container")
        looked_at(page, "the first-run containers page")

        received, outgoing = tmp_path / "received", tmp_path / "outgoing"
        received.mkdir()
        (outgoing / "run-3").mkdir(parents=True)
        write_random(outgoing / "run-3" / "a.bin", 3 * 2**20)
        write_random(outgoing / "run-3" / "b.bin", 2**20)
        (outgoing / "notes.txt").write_text("run 3\n")
        agents.append(register_and_start(page, f"{name}-rx", "receiver", lambda token: Agent(
            world.portal.url, token, None, tmp_path / "rx-state", tmp_path, DTN_RECEIVE_DIR=str(received),
            DTN_RECEIVER_HOST="127.0.0.1", DTN_RECEIVER_PORT=str(free_port())).start()))
        screenshot(page, f"onboarding-{viewport['width']}", upto="#onboarding")
        agents.append(register_and_start(page, f"{name}-tx", "sender", lambda token: Agent(
            world.portal.url, token, outgoing, tmp_path / "tx-state", tmp_path).start()))
        page.get_by_role("link", name="Next: send something").click()
        expect(page.locator("#no-grants")).to_contain_text("Nobody has granted you a receiver yet")

        page.goto("/portal/grants/")
        page.get_by_label("Username").fill(name)
        receiver_box = page.get_by_label("Receiver container")
        receiver_box.select_option(receiver_box.locator("option", has_text=f"{name}-rx").get_attribute("value"))
        page.get_by_role("button", name="Grant").click()
        expect(page.locator(".messages")).to_contain_text(f"{name} may now send to {name}-rx")
        looked_at(page, "the grants page")
        wait_for(lambda: all(g["endpoint"] for g in person.api("/api/v1/grants")["received"]), 40,
                 "the receiver to serve the new grant", 0.3)

        page.goto("/portal/send/")
        page.get_by_label("Receiver", exact=True).select_option(label=f"{name}-rx ({name})")
        page.get_by_role("button", name="Pick from the sender's send folder").click()
        picker = page.locator("#picker")
        expect(picker.get_by_label("notes.txt")).to_be_visible()
        picker.get_by_role("button", name="Open folder run-3").click()
        expect(page.locator("#picker-path")).to_have_text("/run-3")
        picker.get_by_label("Select all in this folder").check()
        expect(page.locator("#picker-total")).to_have_text("To send: 2 files, 4.0 MiB.")
        page.get_by_role("button", name="See the grant's folder at the receiver").click()
        expect(page.locator("#dest-status")).to_have_text("Nothing here yet.")
        looked_at(page, "the two-pane send page")
        screenshot(page, f"send-two-panes-{viewport['width']}", upto=".panes")
        # Choosing the receiver asked the network check once; its verdict sits beside the Send button.
        expect(page.locator("#send-verdict")).to_contain_text("Network check: go", timeout=60_000)
        page.get_by_label("Destination prefix").fill("landed")
        page.get_by_label("Label").fill(f"first of {name}")
        page.get_by_role("button", name="Send", exact=True).click()

        expect(page.get_by_role("heading", name=f"Transfer first of {name}")).to_be_visible()
        expect(page.locator("#state")).to_have_text("succeeded", timeout=90_000)
        looked_at(page, "the finished transfer")
        landed = received / person.api("/api/v1/grants")["received"][0]["bucket"] / "landed" / "run-3"
        assert sorted(p.name for p in landed.glob("*.bin")) == ["a.bin", "b.bin"]

        # What landed is now what the receiver's pane shows, with sizes.
        page.goto("/portal/send/")
        page.get_by_label("Receiver", exact=True).select_option(label=f"{name}-rx ({name})")
        page.get_by_role("button", name="See the grant's folder at the receiver").click()
        page.locator("#dest").get_by_role("button", name="Open folder landed at the receiver").click()
        expect(page.locator("#dest-path")).to_have_text("/landed")
        page.locator("#dest").get_by_role("button", name="Open folder run-3 at the receiver").click()
        expect(page.locator("#dest-path")).to_have_text("/landed/run-3")
        expect(page.locator("#dest-entries")).to_contain_text("a.bin")
        expect(page.locator("#dest-entries")).to_contain_text("3.0 MiB")
    finally:
        context.close()
        for agent in agents:
            agent.stop()
