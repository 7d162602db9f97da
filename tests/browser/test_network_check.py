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
    expect(card).to_contain_text(re.compile(r"Probe, one stream\s*[\d.]+ [KMG]B/s"))
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
