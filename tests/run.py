"""The test command behind `make test`.

0. Chromium (Debian) and axe-core (npm) for the browser tests, if missing.
1. The compose story on a real docker engine (tests/deploy/engine), first and alone: it starts
   dockerd, which adds firewall tables, bridges and turns on forwarding, and it puts the host back
   when it stops. The network-bed and fault tests of the next step run on that host after it, so a
   leftover would show there too.
2. Every other test once on SQLite (unit, API, agent, end-to-end, network bed, faults).
3. The portal's unit and API tests again on a real PostgreSQL server started
   here as a throwaway cluster and stopped afterwards, whatever happens.
4. `make demo` once: the user story through a verified transfer.

pytest's exit status 5 (nothing collected) counts as a failure: this project
has tests, so collecting none means the suite is broken."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

from tests.tools import browser
from tests.tools.pgcluster import Cluster


def pytest(args, env=None) -> int:
    started = time.monotonic()
    print(f"\n=== pytest {' '.join(args)}", flush=True)
    status = subprocess.call([sys.executable, "-m", "pytest", *args], env=env)
    print(f"=== exit {status} after {time.monotonic() - started:.0f} s", flush=True)
    return status


def run_demo() -> int:
    """`make demo`, once: the user story through a verified transfer, from scratch."""
    started = time.monotonic()
    root = tempfile.mkdtemp(prefix="dtn-demo-")
    print("\n=== make demo (python -m portal.box demo)", flush=True)
    try:
        status = subprocess.call([sys.executable, "-m", "portal.box", "demo", "--root", root])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"=== exit {status} after {time.monotonic() - started:.0f} s", flush=True)
    return status


def main(argv) -> int:
    extra = argv[1:]
    # The browser tests' Chromium (apt) and axe-core (npm), installed once up front.
    started = time.monotonic()
    browser.ensure_all()
    print(f"=== Chromium and axe-core ready after {time.monotonic() - started:.0f} s", flush=True)
    engine = pytest(["tests/deploy/engine", "-m", "engine", *extra])
    # PostgreSQL-only tests are deselected, not skipped: under CI a skip fails the run.
    sqlite = pytest(["tests", "-m", "not postgres_only and not engine", *extra])
    cluster = Cluster()
    try:
        url = cluster.start()
        env = {**os.environ, "DATABASE_URL": url}
        postgres = pytest(["tests/portal", *extra], env=env)
    finally:
        cluster.stop()
    demo = run_demo()
    failed = [name for name, status in (("docker engine", engine), ("sqlite", sqlite), ("postgresql", postgres),
                                        ("make demo", demo))
              if status != 0]
    if failed:
        print(f"FAILED on: {', '.join(failed)}")
        return 1
    print("All tests passed on SQLite and PostgreSQL.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
