"""The network check in the browser: on demand from the send page, and on a
transfer's page as the card and the reference line of its throughput chart."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import assert_accessible, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def test_alice_checks_the_network_to_bobs_receiver_from_the_send_page(world):
    page = world.alice.go("/portal/send/")
    page.get_by_role("button", name="Use bob-receiver").click()
    page.get_by_role("button", name="Check the network to this receiver").click()
    expect(page.locator("#netcheck-status")).to_contain_text("Network check done", timeout=60_000)
    card = page.locator("#netcheck-card")
    expect(card).to_be_visible()
    # Loopback: a go (perhaps with warnings, each shown), with what was measured.
    expect(card.locator(".badge")).to_have_text(re.compile(r"^(Go|Go, with warnings)$"))
    expect(card).to_contain_text("Round trip")
    expect(card).to_contain_text(re.compile(r"Probe, one stream\s*[\d.]+ [KMG]iB/s"))
    # The sender's TCP as it is here; a local process only reads it (it never tunes this host).
    expect(card).to_contain_text(re.compile(r"TCP at the sender\s*(bbr|cubic|reno), buffers up to [\d.]+ [KMG]iB"))
    assert_accessible(page, "the send page with a network check")
    screenshot(page, "network-check", upto="#netcheck-card")


def test_the_transfer_page_draws_the_throughput_with_the_prediction(world):
    page = world.alice.go("/portal/send/")
    page.get_by_label("Receiver container ID").fill(world.bob_receiver)
    page.get_by_label("Source paths").fill("run-17.bin")
    page.get_by_label("Destination prefix").fill("charted")
    page.get_by_label("Bandwidth limit").fill("1.5M")
    page.get_by_label("Label").fill("charted")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.get_by_role("heading", name="Transfer charted")).to_be_visible()

    chart = page.locator("#throughput")
    expect(chart.locator("polyline.throughput")).to_be_attached(timeout=30_000)
    expect(page.locator("#state")).to_have_text("succeeded", timeout=60_000)
    # The card of the check this transfer began with, and its prediction as the chart's reference line.
    card = page.locator("#network-check")
    expect(card).to_be_visible()
    expect(card.locator(".badge")).to_have_text(re.compile(r"^(Go|Go, with warnings)$"))
    expect(chart.locator("line.predicted")).to_be_attached()
    label = chart.locator("svg").get_attribute("aria-label")
    assert label.startswith("Throughput over") and "predicted" in label
    points = chart.locator("polyline.throughput").get_attribute("points").split()
    assert len(points) >= 2
    assert_accessible(page, "a transfer's page with its chart and network check")
    screenshot(page, "transfer-chart", upto="#network-check")


def test_a_stall_in_the_status_is_marked_on_the_chart(world):
    """The page as it draws a stall: the status JSON of a finished transfer with a
    stall added on its way to the browser (a real stall needs 20 s without bytes)."""
    transfer = next(t for t in world.alice.api("/api/v1/transfers")["results"] if t["throughput"]["points"])
    page = world.alice.page

    def with_a_stall(route):
        body = route.fetch().json()
        body["stalls"] = [{"start_s": 1.0, "end_s": 2.0, "message": "no bytes for 20 s; 3 retries"},
                          {"start_s": 3.0, "end_s": None, "message": "still stalled"}]
        route.fulfill(json=body)

    page.route(f"**/api/v1/transfers/{transfer['transfer_id']}/status", with_a_stall)
    try:
        page.goto(f"/portal/transfers/{transfer['transfer_id']}/")
        stalls = page.locator("#throughput rect.stall")
        expect(stalls).to_have_count(2)
        expect(stalls.first.locator("title")).to_have_text(re.compile(r"Stall from 1 s to 2 s: no bytes for 20 s"))
        expect(stalls.nth(1).locator("title")).to_have_text(re.compile("still stalled"))
        assert "2 stalls" in page.locator("#throughput svg").get_attribute("aria-label")
    finally:
        page.unroute(f"**/api/v1/transfers/{transfer['transfer_id']}/status")
