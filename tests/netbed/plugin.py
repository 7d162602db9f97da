"""pytest glue for the bed: a `netbed` fixture factory and the end-of-session
check that every bed this session made left nothing behind.

tests/netbed/conftest.py imports these names; another test directory can do
the same (or the root conftest can list this module in `pytest_plugins`)."""

from __future__ import annotations

import os

import pytest

from tests.netbed import bed as bed_module
from tests.netbed import host


def require_bed() -> None:
    """Skip, naming the reason, when this machine cannot run a bed (not root,
    no TUN device); under CI=true fail instead: there a bed test that did not
    run is a failure."""
    reason = host.unavailable_reason()
    if reason:
        unavailable(reason)


def unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and the test bed cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


def start_bed(**kwargs) -> bed_module.Bed:
    """A started Bed, or a skip (a failure under CI=true) naming why this
    machine cannot run one."""
    try:
        return bed_module.Bed(**kwargs).start()
    except host.BedUnavailable as reason:
        unavailable(str(reason))


@pytest.fixture
def netbed():
    """Factory: `netbed(cc="cubic", rate_mbit=200, rtt_ms=50)` -> a started Bed,
    closed when the test ends, however it ends."""
    beds = []

    def make(**kwargs):
        bed = start_bed(**kwargs)
        beds.append(bed)
        return bed

    yield make
    for bed in reversed(beds):
        bed.close()


def pytest_sessionfinish(session, exitstatus):
    run_ids = bed_module.created_run_ids()
    if not run_ids:
        return
    bed_module._close_all()
    found = host.leftovers(run_ids, cc_allowed=bed_module.allowed_cc_before_first_bed())
    if not found:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = ["netbed: the test bed left these behind (removed now; the run fails):", *(f"  {f}" for f in found)]
    for line in lines:
        if reporter is not None:
            reporter.write_line(line, red=True)
        else:
            print(line)
    host.remove_runs(run_ids)
    session.exitstatus = 1
