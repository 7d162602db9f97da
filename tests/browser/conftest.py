"""Browser tests: Debian's Chromium driven by Playwright (headless) against a
real portal server, real agents, rclone and S3 servers, as a person uses them.

The `world` is set up through the pages themselves, once per session: Alice,
Bob and Charlie sign up, Alice and Bob register their containers, Bob grants
Alice; then both agents start with the tokens the pages showed. Tests share it.

`DTN_SCREENSHOTS=docs/img` saves screenshots of the main pages while the tests
run (`make screenshots`; the `screenshot(...)` calls in the tests say which)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.harness import Agent, PortalServer, Scratch, wait_for, write_random
from tests.tools import browser as browser_tools
from tests.tools.net import free_port

PASSWORD = "correct horse battery staple 42"
# Playwright waits this long for a selector or an expectation before failing.
expect.set_options(timeout=20_000)


@pytest.fixture(scope="package")
def portal():
    # Quick heartbeats: the side channel (folder listings) rides on them.
    with PortalServer(DTN_HEARTBEAT_SECONDS="2") as server:
        yield server


@pytest.fixture(scope="package")
def chromium() -> Browser:
    browser_tools.ensure_all()
    with sync_playwright() as playwright:
        # launch() gives every run a fresh, throwaway profile (--user-data-dir).
        browser = playwright.chromium.launch(executable_path=str(browser_tools.CHROMIUM), headless=True,
                                             args=browser_tools.CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def new_context(chromium: Browser, portal) -> BrowserContext:
    context = chromium.new_context(base_url=portal.url, viewport={"width": 1200, "height": 900})
    context.set_default_timeout(20_000)
    return context


@dataclass
class Person:
    username: str
    context: BrowserContext
    page: Page

    def go(self, path: str) -> Page:
        response = self.page.goto(path)
        assert response is not None
        return self.page

    def api(self, path: str) -> dict:
        """GET an API route with the person's session (the pages' own way of asking)."""
        response = self.page.request.get(path)
        assert response.ok, f"GET {path}: {response.status} {response.text()}"
        return response.json()


def sign_up(chromium, portal, username: str) -> Person:
    context = new_context(chromium, portal)
    page = context.new_page()
    page.goto("/accounts/signup/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email").fill(f"{username}@example.org")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Your containers")).to_be_visible()
    return Person(username, context, page)


def sign_in(person: Person) -> None:
    page = person.page
    page.get_by_role("button", name=f"Sign out {person.username}").click()
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(person.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Your containers")).to_be_visible()


def register(person: Person, name: str, role: str) -> tuple[str, str]:
    """Register a container on the containers page; the page shows its ID and token once."""
    page = person.go("/portal/containers/")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Role").select_option(role)
    page.get_by_role("button", name="Register").click()
    expect(page.locator("#agent-token")).to_be_visible()
    return page.locator("#container-id").inner_text().strip(), page.locator("#agent-token").inner_text().strip()


def axe_violations(page: Page) -> list[dict]:
    """Every axe-core violation on the page as it is now, whatever its impact (minor ones too: a skipped
    heading level is "moderate" and still a page a screen reader reads worse)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(browser_tools.AXE_JS))
    results = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [n["target"] for n in v["nodes"]][:5]}
            for v in results["violations"]]


def assert_accessible(page: Page, what: str) -> None:
    found = axe_violations(page)
    assert not found, f"axe-core on {what}: {found}"


def screenshot(page: Page, name: str, upto: str | None = None) -> None:
    """Saved only when DTN_SCREENSHOTS names a folder (e.g. docs/img): the page
    from its top down to the bottom of `upto` (or the first screenful)."""
    folder = os.environ.get("DTN_SCREENSHOTS")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    height = 900
    if upto:
        box = page.locator(upto).bounding_box()
        scroll = page.evaluate("window.scrollY")
        height = int(box["y"] + scroll + box["height"] + 16)
    page.evaluate("window.scrollTo(0, 0)")
    # As wide as the page's viewport: the phone-sized pages (issue 25) are shot at 390 px.
    page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True,
                    clip={"x": 0, "y": 0, "width": page.viewport_size["width"], "height": height})


def make_dataset(send_dir: Path) -> None:
    write_random(send_dir / "run-17.bin", 6 * 2**20)
    write_random(send_dir / "slow" / "big.bin", 24 * 2**20)
    (send_dir / "docs").mkdir()
    (send_dir / "docs" / "readme.txt").write_text("what run 17 is\n")
    (send_dir / "docs" / "not-this.txt").write_text("left behind\n")
    for index in range(12):
        folder = send_dir / "frames" / f"séance {index % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"frame {index:03d}.dat").write_bytes(os.urandom(2048 + index))


@dataclass
class World:
    portal: PortalServer
    alice: Person
    bob: Person
    charlie: Person
    alice_sender: str
    bob_receiver: str
    grant: dict
    send_dir: Path
    receive_dir: Path
    agents: list = field(default_factory=list)

    def landed(self, prefix: str) -> Path:
        return self.receive_dir / self.grant["bucket"] / prefix


@pytest.fixture(scope="package")
def world(portal, chromium):
    scratch = Scratch("dtn-browser-")
    agents: list[Agent] = []
    people: list[Person] = []
    try:
        alice, bob, charlie = (sign_up(chromium, portal, name) for name in ("alice", "bob", "charlie"))
        people += [alice, bob, charlie]
        sign_in(alice)  # the sign-in page too, not only sign-up's automatic session
        alice_sender, alice_token = register(alice, "alice-sender", "sender")
        bob_receiver, bob_token = register(bob, "bob-receiver", "receiver")

        page = bob.go("/portal/grants/")
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Receiver container").select_option(bob_receiver)
        page.get_by_role("button", name="Grant").click()
        expect(page.locator(".messages")).to_contain_text("alice may now send to bob-receiver")

        send_dir, receive_dir = scratch / "alice-data", scratch / "bob-received"
        send_dir.mkdir()
        receive_dir.mkdir()
        make_dataset(send_dir)
        first_port = free_port()
        agents.append(Agent(portal.url, bob_token, None, scratch / "bob-state", scratch.path,
                            DTN_RECEIVE_DIR=str(receive_dir), DTN_RECEIVER_HOST="127.0.0.1",
                            DTN_RECEIVER_PORT=str(first_port)).start())
        agents.append(Agent(portal.url, alice_token, send_dir, scratch / "alice-state",
                            scratch.path).start())

        def served():
            grants = bob.api("/api/v1/grants")["given"]
            ready = [g for g in grants if g["endpoint"]]
            box = bob.api(f"/api/v1/containers/{bob_receiver}")
            return ready[0] if ready and box["online"] and box["endpoint"].startswith("https://") else None

        grant = wait_for(served, 40, "Bob's receiver to come online with TLS and serve the grant", 0.3)
        wait_for(lambda: alice.api(f"/api/v1/containers/{alice_sender}")["online"], 30, "Alice's sender online", 0.3)
        yield World(portal, alice, bob, charlie, alice_sender, bob_receiver, grant, send_dir, receive_dir, agents)
    finally:
        for person in people:
            person.context.close()
        for agent in agents:
            agent.stop()
        for agent in agents:
            text = agent.log()
            if text:
                print(f"--- {agent.log_path.name} (last lines) ---")
                print("\n".join(text.splitlines()[-40:]))
        scratch.remove()
