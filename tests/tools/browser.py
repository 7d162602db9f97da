"""What the browser tests need on the machine, installed idempotently by the
test command (and again, as a no-op, by tests/browser/conftest.py):

- Debian's Chromium (`apt-get install -y chromium`): Playwright drives it by
  path; Playwright's own browser download cannot work here and is never used.
- axe-core, pinned, from the npm registry into a git-ignored cache inside the
  repository; the tests inject it into each page from that file (no CDN).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
AXE_VERSION = "4.14.1"
NODE_DIR = REPO / ".cache" / "browser-tests"
AXE_JS = NODE_DIR / "node_modules" / "axe-core" / "axe.min.js"

# Without the background-networking flags Chromium keeps dialling Google's hosts,
# which this machine's closed network refuses (facts.md, "Browser").
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]


class BrowserSetupError(RuntimeError):
    pass


def _run(args, **kwargs) -> None:
    result = subprocess.run(args, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise BrowserSetupError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout[-2000:]}"
                                f"\n{result.stderr[-2000:]}")


def ensure_chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0:
        raise BrowserSetupError("Chromium is missing and only root can install it: apt-get install -y chromium")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        _run(["apt-get", "install", "-y", "-q", "chromium"], env=env)
    except BrowserSetupError:
        # A fresh machine's package lists may be empty or stale.
        _run(["apt-get", "update", "-q"], env=env)
        _run(["apt-get", "install", "-y", "-q", "chromium"], env=env)
    if not CHROMIUM.exists():
        raise BrowserSetupError(f"apt-get installed chromium but {CHROMIUM} is missing")
    return CHROMIUM


def _installed_axe_version() -> str | None:
    try:
        return json.loads((AXE_JS.parent / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def ensure_axe() -> Path:
    if _installed_axe_version() == AXE_VERSION and AXE_JS.exists():
        return AXE_JS
    npm = shutil.which("npm")
    if npm is None:
        raise BrowserSetupError("npm is missing: apt-get install -y npm")
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    (NODE_DIR / "package.json").write_text(json.dumps(
        {"name": "dtn-browser-tests", "private": True, "dependencies": {"axe-core": AXE_VERSION}}, indent=2))
    # The registry's tarball is checked against its integrity hash by npm itself.
    with tempfile.TemporaryDirectory() as cache:
        _run([npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--cache", cache,
              f"axe-core@{AXE_VERSION}"], cwd=NODE_DIR)
    if _installed_axe_version() != AXE_VERSION:
        raise BrowserSetupError(f"npm did not install axe-core {AXE_VERSION} into {NODE_DIR}")
    return AXE_JS


def ensure_all() -> None:
    ensure_chromium()
    ensure_axe()


if __name__ == "__main__":
    ensure_all()
    print(f"Chromium at {CHROMIUM}, axe-core {AXE_VERSION} at {AXE_JS}")
