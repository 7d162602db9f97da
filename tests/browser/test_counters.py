"""One transfer, really sent through rclone, slowed by its bandwidth limit, stopped mid-way and restarted:
the page, the API and the CLI show the same figures (issue 19), in the same IEC form, at each stage;
the bytes done never exceed the total, and the bytes a restart sent again are shown apart as re-sent.
The stop reads as canceled_by_user with a plain sentence; rclone's words are in the event log only."""

from __future__ import annotations

import os
import re

import pytest
from playwright.sync_api import Page, expect

from dtn_protocol.units import MiB, human_bytes
from tests.browser.conftest import PASSWORD
from tests.cli.conftest import CLI
from tests.harness import Scratch, sha256, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

FILES, SIZE = 4, 4 * MiB


def text(page: Page, selector: str) -> str:
    # The server writes a number and its unit with a no-break space; the page's script with a plain one.
    return " ".join(page.locator(selector).inner_text().replace("\xa0", " ").split())


def figures(status: dict) -> dict:
    """What the API's figures look like when written for people (dtn_protocol.units)."""
    b, f = status["bytes"], status["files"]
    return {"done": human_bytes(b["transferred"] + b["skipped"]), "total": human_bytes(b["total"]),
            "resent": human_bytes(b["resent"]) if b["resent"] else "",
            "files": f"{f['transferred'] + f['skipped']}", "files_total": f"{f['total']}"}


def same_everywhere(world, page: Page, cli: CLI, transfer_id: str) -> dict:
    """The page (after its script caught up), the API and `dtn watch` agree on a finished transfer."""
    status = world.alice.api(f"/api/v1/transfers/{transfer_id}/status")
    b, f = status["bytes"], status["files"]
    assert b["transferred"] + b["skipped"] <= b["total"], b
    assert f["transferred"] + f["skipped"] + f["failed"] <= f["total"], f
    want = figures(status)
    expect(page.locator("#state")).to_have_text(status["state"])
    assert text(page, "[data-field=bytes]") == f"{want['done']} of {want['total']}"
    assert text(page, "[data-field=files-done]") == f"files {want['files']} / {want['files_total']}"
    resent = page.locator("[data-field=resent]")
    if want["resent"]:
        expect(resent).to_be_visible()
        assert text(page, "[data-field=resent]") == f"(+{want['resent']} re-sent)"
    else:
        expect(resent).to_be_hidden()
    assert text(page, "#bytes").endswith(f"of {want['total']}; {want['resent'] or '0 B'} re-sent")
    # The transfers list's row says the same.
    listing = page.context.new_page()
    try:
        listing.goto("/portal/transfers/")
        row = listing.locator(f"tr[data-transfer-id='{transfer_id}']")
        assert text(row, "[data-field=bytes]") == f"{want['done']} / {want['total']}"
        assert text(row, "[data-field=files]") == f"{want['files']} / {want['files_total']}"
    finally:
        listing.close()
    # `dtn watch` of a finished transfer: its progress line, then its last line.
    watched = cli("watch", transfer_id, "--timeout", "20")
    line = watched.out.splitlines()[-2]
    assert f"{want['done']}/{want['total']}" in line, watched
    assert f"files {want['files']}/{want['files_total']}" in line, watched
    assert (f"+{want['resent']} re-sent" in line) == bool(want["resent"]), watched
    return status


def test_a_stopped_and_restarted_transfer_shows_the_same_figures_on_the_page_the_api_and_the_cli(world):
    folder = world.send_dir / "counted"
    folder.mkdir()
    for index in range(FILES):
        (folder / f"part-{index}.bin").write_bytes(os.urandom(SIZE))
    scratch = Scratch("dtn-counters-cli-")
    cli = CLI(scratch.path)
    try:
        login = cli("login", "--portal", world.portal.url, "--username", "alice", DTN_PASSWORD=PASSWORD)
        assert login.code == 0, login

        page = world.alice.go("/portal/send/")
        page.get_by_label("Receiver container ID").fill(world.bob_receiver)
        page.get_by_label("Source paths").fill("counted")
        page.get_by_label("Destination prefix").fill("counted")
        # Slow enough to stop mid-way: every file is half-sent when the stop comes.
        page.get_by_label("Bandwidth limit").fill("2M")
        page.get_by_label("Label").fill("counted")
        page.get_by_role("button", name="Send", exact=True).click()
        expect(page.get_by_role("heading", name="Transfer counted")).to_be_visible()
        transfer_id = page.url.rstrip("/").split("/")[-1]

        def moving():
            status = world.alice.api(f"/api/v1/transfers/{transfer_id}/status")
            return status if status["bytes"]["transferred"] >= SIZE else None

        wait_for(moving, 60, "a quarter of the data to move", 0.2)
        # While it runs, the page's script writes the figures the way the server does.
        expect(page.locator("[data-field=bytes]")).to_have_text(re.compile(r"^\d+\.\d MiB of 16\.0 MiB$"))
        page.get_by_role("button", name="Stop").click()
        expect(page.locator("#state")).to_have_text("canceled", timeout=30_000)
        stopped = same_everywhere(world, page, cli, transfer_id)
        assert stopped["fatal_error"]["reason"] == "canceled_by_user"
        fatal = text(page, "#fatal-error")
        assert fatal == "canceled_by_user: Stopped at your request. A restart sends only what is missing or different."
        assert "context canceled" not in text(page, "#summary")
        assert "context canceled" not in text(page, "#files-section")

        page.get_by_role("button", name="Restart").click()
        expect(page.locator("#state")).to_have_text("succeeded", timeout=90_000)
        done = same_everywhere(world, page, cli, transfer_id)
        b = done["bytes"]
        assert b["transferred"] + b["skipped"] == b["total"] == FILES * SIZE
        # The files half-sent when the stop came were sent again from their start.
        assert b["resent"] > 0, b
        assert done["files"]["transferred"] == FILES
        assert done["fatal_error"] is None
        # The whole record and the attempts in it agree: each attempt's done never above its total.
        record = world.alice.api(f"/api/v1/transfers/{transfer_id}")
        for attempt in record["commands"]:
            assert attempt["bytes"]["done"] <= attempt["bytes"]["total"], attempt
            assert attempt["files"]["done"] <= attempt["files"]["total"], attempt
        # rclone's own words about the stop are kept, in the event log only.
        events = world.alice.api(f"/api/v1/transfers/{transfer_id}/events")["results"]
        assert any("context canceled" in e["message"] for e in events if e["kind"] == "stop_detail"), events
        for index in range(FILES):
            name = f"part-{index}.bin"
            assert sha256(world.landed("counted") / "counted" / name) == sha256(folder / name)
    finally:
        scratch.remove()
