"""The live pages' poller in the real browser: fast while the tab is visible,
slow while it is hidden (Page Visibility API), at once when it comes back."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

COUNT_TICKS = """async () => {
  const wait = ms => new Promise(resolve => setTimeout(resolve, ms));
  const setHidden = hidden => {
    Object.defineProperty(document, "hidden", {configurable: true, get: () => hidden});
    document.dispatchEvent(new Event("visibilitychange"));
  };
  let ticks = 0;
  const poller = DTN.poll(() => { ticks++; }, 100, 2000);
  await wait(1000);
  const visible = ticks;
  setHidden(true);
  await wait(100);
  ticks = 0;
  await wait(1500);
  const hidden = ticks;
  setHidden(false);
  await wait(50);
  const back = ticks;
  poller.stop();
  setHidden(false);
  return {visible, hidden, back};
}"""


def test_the_poller_slows_down_in_a_hidden_tab_and_catches_up_when_shown(world):
    page = world.alice.go("/portal/transfers/")
    counts = page.evaluate(COUNT_TICKS)
    assert counts["visible"] >= 6, counts  # ~10 at 100 ms
    assert counts["hidden"] <= 1, counts  # at most one at 2 s
    assert counts["back"] >= counts["hidden"] + 1, counts  # shown again: polled at once
