"""The send flow in a real browser: files picked from the sender's listing, the
live bar reaching 100 %, stop and restart, the keyboard alone, Charlie's 404s,
and axe-core on every page on the way."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import assert_accessible, register, screenshot
from tests.harness import sha256

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def open_picker(page: Page) -> None:
    page.get_by_role("button", name="Pick from the sender's send folder").click()
    expect(page.locator("#picker-status")).to_contain_text("Tick what to send")


def test_alice_sends_to_bob_with_files_picked_from_the_listing_and_watches_it_succeed(world):
    page = world.alice.go("/portal/send/")
    assert_accessible(page, "the send page")
    page.get_by_role("button", name="Use bob-receiver").click()
    expect(page.get_by_label("Receiver container ID")).to_have_value(world.bob_receiver)

    open_picker(page)
    picker = page.locator("#picker")
    expect(picker.get_by_label("run-17.bin")).to_be_visible()
    expect(picker.get_by_text("6.0 MiB")).to_be_visible()
    picker.get_by_label("run-17.bin").check()
    picker.get_by_role("button", name="Open folder docs").click()
    expect(page.locator("#picker-path")).to_have_text("/docs")
    picker.get_by_label("readme.txt").check()
    assert_accessible(page, "the send page with the folder picker open")
    screenshot(page, "send-picker", upto="#picker")
    page.get_by_role("button", name="Up one folder").click()
    expect(page.locator("#picker-path")).to_have_text("/")
    picker.get_by_label("frames/").check()
    expect(picker.get_by_label("run-17.bin")).to_be_checked()  # the listing remembers what is picked
    page.get_by_role("button", name="Done").click()
    assert page.get_by_label("Source paths").input_value().splitlines() == ["run-17.bin", "docs/readme.txt", "frames"]

    page.get_by_label("Destination prefix").fill("from-alice")
    page.get_by_label("Label").fill("run 17")
    page.get_by_role("button", name="Send", exact=True).click()

    expect(page.get_by_role("heading", name="Transfer run 17")).to_be_visible()
    url = page.url
    bar = page.get_by_role("progressbar", name="Progress of run 17")
    # The page follows the transfer by itself: no reload (the marker would vanish).
    page.evaluate("window.__notReloaded = true")
    expect(page.locator("#state")).to_have_text("succeeded", timeout=90_000)
    expect(bar).to_have_attribute("value", "100")
    expect(page.locator("[data-field=percent]")).to_have_text("100%")
    expect(page.locator("[data-field=files-done]")).to_have_text(re.compile(r"files 14 / 14"))
    assert page.evaluate("window.__notReloaded") is True and page.url == url
    # The server-decided parts followed too: the buttons of a finished transfer, the verified files.
    expect(page.get_by_role("button", name="Stop")).to_have_count(0)
    expect(page.get_by_role("button", name="Delete from queue")).to_be_visible()
    expect(page.locator("#files-section")).to_contain_text("docs/readme.txt")
    assert_accessible(page, "a finished transfer's page")

    landed = world.landed("from-alice")
    assert sha256(landed / "run-17.bin") == sha256(world.send_dir / "run-17.bin")
    assert (landed / "docs" / "readme.txt").read_text() == "what run 17 is\n"
    assert not (landed / "docs" / "not-this.txt").exists()
    assert len(list((landed / "frames").rglob("*.dat"))) == 12

    listing = world.alice.go("/portal/transfers/")
    row = listing.locator("tr", has_text="run 17")
    expect(row.locator("[data-field=state]")).to_have_text("succeeded")
    expect(row.get_by_role("progressbar")).to_have_attribute("value", "100")
    assert_accessible(listing, "the transfers list")
    screenshot(listing, "transfers", upto="#transfers")


def test_a_rate_limited_transfer_is_stopped_and_restarted_from_its_page(world):
    page = world.alice.go("/portal/send/")
    page.get_by_label("Receiver container ID").fill(world.bob_receiver)
    page.get_by_label("Source paths").fill("slow")
    page.get_by_label("Destination prefix").fill("slow")
    page.get_by_label("Bandwidth limit").fill("3M")
    page.get_by_label("Label").fill("slow one")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.get_by_role("heading", name="Transfer slow one")).to_be_visible()

    # The list shows it moving too, without a reload.
    listing = world.alice.context.new_page()
    listing.goto("/portal/transfers/")
    row = listing.locator("tr", has_text="slow one")
    expect(row.locator("[data-field=state]")).to_have_text("active", timeout=30_000)

    percent = page.locator("[data-field=percent]")
    expect(percent).to_have_text(re.compile(r"^([1-9]\d?)%$"), timeout=30_000)
    assert_accessible(page, "a running transfer's page")
    expect(page.locator("[data-field=rate]")).to_have_text(re.compile(r"[KM]iB/s"))
    expect(page.locator("[data-field=eta]")).to_have_text(re.compile(r"ETA \d"))
    page.get_by_role("button", name="Stop").click()
    expect(page.locator(".messages")).to_contain_text("Stop")
    expect(page.locator("#state")).to_have_text("canceled", timeout=30_000)
    expect(page.get_by_role("button", name="Restart")).to_be_visible()
    expect(row.locator("[data-field=state]")).to_have_text("canceled", timeout=30_000)

    page.get_by_role("button", name="Restart").click()
    expect(page.locator(".messages")).to_contain_text("Restarted")
    expect(page.locator("#state")).to_have_text("succeeded", timeout=60_000)
    expect(page.get_by_role("progressbar", name="Progress of slow one")).to_have_attribute("value", "100")
    # A finished list checks its rows every 15 s: the restart made in the other tab shows by then.
    expect(row.locator("[data-field=state]")).to_have_text("succeeded", timeout=45_000)
    listing.close()
    assert sha256(world.landed("slow") / "slow" / "big.bin") == sha256(world.send_dir / "slow" / "big.bin")


def tab_to(page: Page, selector: str, limit: int = 80) -> None:
    """Press Tab until `selector` has the focus, as a keyboard user would."""
    target = page.locator(selector)
    for _ in range(limit):
        if target.evaluate("node => node === document.activeElement"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{selector} was not reached with Tab in {limit} presses")


def test_the_send_flow_works_with_the_keyboard_alone(world):
    page = world.alice.go("/portal/send/")
    tab_to(page, "#id_receiver")
    page.keyboard.type(world.bob_receiver)
    tab_to(page, "#browse")
    page.keyboard.press("Enter")
    expect(page.locator("#picker-status")).to_contain_text("Tick what to send")
    # The picker takes the focus; the first entry is a Tab away.
    tab_to(page, "#picker-entries input[value='docs']")
    page.keyboard.press("Space")
    tab_to(page, "#picker-close")
    page.keyboard.press("Enter")
    expect(page.get_by_label("Source paths")).to_have_value("docs")
    tab_to(page, "#id_prefix")
    page.keyboard.type("by-keyboard")
    tab_to(page, "#id_label")
    page.keyboard.type("keyboard run")
    page.keyboard.press("Enter")  # submits the form
    expect(page.get_by_role("heading", name="Transfer keyboard run")).to_be_visible()
    expect(page.locator("#state")).to_have_text("succeeded", timeout=60_000)
    tab_to(page, "#actions button:has-text('Delete from queue')")
    page.keyboard.press("Enter")
    expect(page.locator(".messages")).to_contain_text("Removed 1 finished command(s)")
    assert (world.landed("by-keyboard") / "docs" / "readme.txt").exists()


def test_a_bad_send_shows_each_error_beside_its_field_and_queues_nothing(world):
    page = world.alice.go("/portal/send/")
    page.get_by_label("Receiver container ID").fill(world.bob_receiver)
    page.get_by_label("Source paths").fill("/etc/passwd")
    page.get_by_label("Bandwidth limit").fill("fast please")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.locator("#form-errors")).to_be_visible()
    sources = page.get_by_label("Source paths")
    expect(sources).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#field-sources .error")).to_contain_text("relative to your send folder")
    expect(page.locator("#field-bandwidth_limit .error")).to_be_visible()
    # The error is the field's description, so a screen reader reads it with the field.
    described = sources.get_attribute("aria-describedby").split()
    assert "id_sources_error" in described
    expect(page.get_by_label("Receiver container ID")).to_have_value(world.bob_receiver)  # nothing typed is lost
    assert_accessible(page, "the send page with errors")


def test_the_main_pages_have_no_accessibility_violations(world):
    for path in ("/portal/containers/", f"/portal/containers/{world.alice_sender}/", "/portal/grants/",
                 "/portal/transfers/", "/portal/send/", "/accounts/tokens/", "/portal/notifications/"):
        page = world.alice.go(path)
        assert_accessible(page, path)
    page = world.bob.go("/portal/containers/")
    assert_accessible(page, "Bob's containers")
    page = world.bob.go(f"/portal/containers/{world.bob_receiver}/")
    assert_accessible(page, "Bob's receiver")
    screenshot(world.bob.page, "container-receiver", upto="#receiver-grants")
    page = world.alice.go("/portal/containers/")
    screenshot(page, "containers", upto="#grants-received")
    anonymous = world.charlie.context.browser.new_context(base_url=world.portal.url)
    try:
        for path in ("/accounts/login/", "/accounts/signup/"):
            page = anonymous.new_page()
            page.goto(path)
            assert_accessible(page, path)
    finally:
        anonymous.close()


def test_charlie_cannot_see_alices_pages(world):
    transfers = world.alice.api("/api/v1/transfers")["results"]
    assert transfers, "the other tests sent something first"
    transfer_id = transfers[0]["transfer_id"]
    for path in (f"/portal/transfers/{transfer_id}/", f"/portal/containers/{world.alice_sender}/",
                 f"/portal/containers/{world.bob_receiver}/", f"/api/v1/transfers/{transfer_id}/status"):
        response = world.charlie.page.goto(path)
        assert response.status == 404, path
    page = world.charlie.go("/portal/transfers/")
    expect(page.get_by_text("No transfers yet")).to_be_visible()
    expect(page.get_by_text("run 17")).to_have_count(0)


def test_the_containers_pages_show_status_certificate_grants_and_rotate_a_token(world):
    page = world.bob.go("/portal/containers/")
    row = page.locator("#containers tr", has_text="bob-receiver")
    expect(row.locator(".badge")).to_have_text("online")
    expect(row).to_contain_text("receiver")
    expect(row).to_contain_text("https://127.0.0.1")
    expect(page.locator("#grants-given")).to_contain_text("alice")
    listed = row.inner_text()
    page.get_by_role("link", name="bob-receiver").click()
    fingerprint = page.locator("#certificate-sha256").inner_text()
    assert re.fullmatch(r"([0-9a-fA-F]{2}:){31}[0-9a-fA-F]{2}", fingerprint), fingerprint
    assert "SHA-256 " + fingerprint[:10] in listed  # the list shows its start
    expect(page.locator("#receiver-grants")).to_contain_text("alice")

    page = world.alice.go("/portal/containers/")
    expect(page.locator("#grants-received")).to_contain_text("bob-receiver")

    # Rotation, on a container of Charlie's (Alice's and Bob's agents keep their tokens).
    container_id, first_token = register(world.charlie, "charlie-box", "sender")
    page = world.charlie.go(f"/portal/containers/{container_id}/")
    expect(page.locator(".badge")).to_have_text("offline")
    page.get_by_role("button", name="Rotate token").click()
    expect(page.get_by_text("New agent token.")).to_be_visible()
    second_token = page.locator("#agent-token").inner_text().strip()
    assert second_token and second_token != first_token
    # Shown once: the page afterwards holds no token.
    page = world.charlie.go(f"/portal/containers/{container_id}/")
    expect(page.locator("#agent-token")).to_have_count(0)
