"""Every main page on a phone (390 px) and a laptop (1280 px), issue 25: the document is never wider than the
viewport (tables scroll inside their own box, fieldsets and charts shrink), the menu collapses behind a toggle
that works without JavaScript, axe-core finds no violation, and no request fails (the favicon included)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import assert_accessible, new_context, screenshot, sign_up
from tests.harness import Agent

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 900}


def fits(page: Page, what: str) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.evaluate("window.innerWidth")
    if width > viewport:
        # Name the outermost culprits, so a failure says what to fix.
        wide = page.evaluate("""(limit) => Array.from(document.querySelectorAll('body *'))
            .filter(e => e.getBoundingClientRect().right > limit + 1
                         && !(e.parentElement && e.parentElement.getBoundingClientRect().right > limit + 1))
            .slice(0, 8).map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
                             + (e.className && e.className.baseVal === undefined ? '.' + e.className : '')
                             + ' ' + Math.round(e.getBoundingClientRect().right))""", viewport)
        raise AssertionError(f"{what} is {width} px wide in a {viewport} px viewport: {wide}")


def watch_failures(page: Page) -> list[str]:
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    return failed


def check(page: Page, path: str, what: str, failed: list[str], status: int = 200) -> None:
    response = page.goto(path)
    assert response is not None and response.status == status, f"{what}: {response and response.status}"
    page.wait_for_load_state("load")
    fits(page, what)
    assert_accessible(page, f"{what} at {page.viewport_size['width']} px")
    if status == 200:
        assert not failed, f"{what}: failed requests {failed}"
    failed.clear()


def signed_in_page(world, person, viewport) -> Page:
    page = person.context.new_page()
    page.set_viewport_size(viewport)
    return page


@pytest.mark.parametrize("viewport", [PHONE, LAPTOP], ids=["390px", "1280px"])
def test_the_signed_out_pages_fit(world, chromium, viewport):
    context = new_context(chromium, world.portal)
    try:
        page = context.new_page()
        page.set_viewport_size(viewport)
        failed = watch_failures(page)
        check(page, "/", "home (signed out)", failed)
        check(page, "/accounts/signup/", "sign-up", failed)
        check(page, "/accounts/login/", "sign-in", failed)
        check(page, "/portal/nope", "a 404", failed, status=404)
        expect(page.get_by_role("heading", name="This page does not exist")).to_be_visible()
    finally:
        context.close()


@pytest.mark.parametrize("viewport", [PHONE, LAPTOP], ids=["390px", "1280px"])
def test_the_signed_in_pages_fit(world, viewport):
    page = signed_in_page(world, world.alice, viewport)
    try:
        failed = watch_failures(page)
        check(page, "/", "home", failed)
        check(page, "/portal/containers/", "containers", failed)
        check(page, f"/portal/containers/{world.alice_sender}/", "container detail", failed)
        check(page, "/portal/send/", "send", failed)
        check(page, "/portal/transfers/", "transfers", failed)
        check(page, "/portal/grants/", "grants", failed)
        check(page, "/accounts/tokens/", "API tokens", failed)
        check(page, "/portal/notifications/", "notifications", failed)
        transfers = world.alice.api("/api/v1/transfers")["results"]
        assert transfers, "the send tests ran first and left transfers"
        check(page, f"/portal/transfers/{transfers[0]['transfer_id']}/", "transfer detail", failed)
        screenshot(page, f"transfer-{viewport['width']}", upto="#transfer")
        check(page, "/portal/transfers/00000000-0000-0000-0000-000000000000/", "a 404 signed in", failed,
              status=404)
        grant_page = signed_in_page(world, world.bob, viewport)
        try:
            failed_bob = watch_failures(grant_page)
            check(grant_page, f"/portal/containers/{world.bob_receiver}/", "a receiver's detail", failed_bob)
        finally:
            grant_page.close()
    finally:
        page.close()


def test_the_menu_collapses_on_a_phone_and_opens_with_its_toggle(world):
    page = signed_in_page(world, world.alice, PHONE)
    try:
        page.goto("/portal/transfers/")
        link = page.get_by_role("navigation", name="Main").get_by_role("link", name="Grants")
        expect(link).to_be_hidden()
        page.get_by_text("Menu", exact=True).click()
        expect(link).to_be_visible()
        screenshot(page, "menu-390", upto="header.top")
        fits(page, "the open menu")
        assert_accessible(page, "the open menu at 390 px")
        link.click()
        expect(page.get_by_role("heading", name="Grants", exact=True)).to_be_visible()
    finally:
        page.close()


def test_the_menu_is_always_open_on_a_laptop(world):
    page = signed_in_page(world, world.alice, LAPTOP)
    try:
        page.goto("/portal/transfers/")
        expect(page.get_by_text("Menu", exact=True)).to_be_hidden()
        expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Grants")).to_be_visible()
    finally:
        page.close()


def test_registering_on_a_phone_gives_the_next_steps_and_sees_the_agent_connect(world, chromium, tmp_path):
    """Dana, new, registers her first container at 390 px: the first-run hint, then the page that shows the token once in a
    ready .env with the compose command, and a line that turns to "connected" when the agent's first heartbeat
    arrives. The token is on no page after that."""
    dana = sign_up(chromium, world.portal, "dana")
    page = dana.page
    page.set_viewport_size(PHONE)
    agent = None
    try:
        failed = watch_failures(page)
        check(page, "/portal/containers/", "containers, empty", failed)
        expect(page.locator("#first-steps")).to_contain_text("Register your first container")
        page.get_by_label("Name").fill("dana-laptop")
        page.get_by_label("Role").select_option("sender")
        page.get_by_role("button", name="Register").click()
        token = page.locator("#agent-token").inner_text().strip()
        env = page.locator("#env-block")
        expect(env).to_contain_text(f"DTN_AGENT_TOKEN={token}")
        expect(env).to_contain_text(f"DTN_PORTAL_URL={world.portal.url}")
        expect(page.locator("#commands-block")).to_contain_text("docker compose -f docker-compose.sender.yml up -d")
        expect(page.locator("#connection")).to_contain_text("Waiting for your container")
        page.get_by_role("button", name="Copy .env").click()
        expect(page.locator("#env-block-copied")).not_to_be_empty()
        fits(page, "the registered page")
        assert_accessible(page, "the registered page at 390 px")

        send_dir = tmp_path / "send"
        send_dir.mkdir()
        agent = Agent(world.portal.url, token, send_dir, tmp_path / "state", tmp_path).start()
        expect(page.locator("#connection")).to_contain_text("Connected: dana-laptop is online", timeout=40_000)
        expect(page.get_by_role("link", name="Next: send something")).to_be_visible()
        assert_accessible(page, "the connected page at 390 px")
        for path in ("/portal/containers/", "/portal/send/"):
            page.goto(path)
            assert token not in page.content(), path
    finally:
        if agent is not None:
            agent.stop()
        dana.context.close()


def test_a_fixed_field_loses_its_error_while_the_others_keep_theirs(world):
    page = signed_in_page(world, world.alice, PHONE)
    try:
        page.goto("/portal/send/")
        page.get_by_label("Destination prefix").fill("../out")
        page.get_by_role("button", name="Send", exact=True).click()
        expect(page.locator("#form-errors")).to_be_visible()
        expect(page.locator("#field-sources")).to_have_class(re.compile(r"has-error"))
        expect(page.locator("#field-prefix")).to_have_class(re.compile(r"has-error"))
        page.get_by_label("Source paths").fill("run-17.bin")
        expect(page.locator("#field-sources")).not_to_have_class(re.compile(r"has-error"))
        expect(page.locator("#field-sources .error")).to_have_count(0)
        assert page.get_by_label("Source paths").get_attribute("aria-invalid") is None
        expect(page.locator("#field-prefix .error")).to_be_visible()  # not fixed yet: still says so
        page.get_by_label("Destination prefix").fill("run-17")
        expect(page.locator("#form-errors")).to_be_visible()  # the destination is still missing
        page.get_by_label("Receiver", exact=True).select_option(label="bob-receiver (bob)")
        expect(page.locator("#field-receiver .error")).to_have_count(0)
        expect(page.locator("#form-errors")).to_be_hidden()
        fits(page, "the send page with errors")
        assert_accessible(page, "the send page with errors at 390 px")
    finally:
        page.close()


def test_a_transfers_long_lists_scroll_inside_their_boxes(world):
    """The transfer page stays about a screenful or three at 390 px however many files and events it has."""
    page = signed_in_page(world, world.alice, PHONE)
    try:
        transfers = world.alice.api("/api/v1/transfers")["results"]
        biggest = max(transfers, key=lambda t: t["files"]["total"] or 0)
        page.goto(f"/portal/transfers/{biggest['transfer_id']}/")
        expect(page.locator("#state")).to_be_visible()
        for box in ("Files (table)", "Events (table)"):
            height = page.get_by_role("region", name=box).bounding_box()["height"]
            assert height <= 32 * 16 + 2, f"{box}: {height} px"
        fits(page, "the biggest transfer")
    finally:
        page.close()
