"""The network check on the test bed: a portal, Bob's TLS receiver and Alice's
sender agent in their namespaces (the fault suite's machinery), a WAN set per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.conftest import world_in_bed
from tests.harness import ProductInBed, wait_for
from tests.netbed.plugin import pytest_sessionfinish  # noqa: F401

CLEAN = {"rate_mbit": 200, "rtt_ms": 2, "loss_pct": 0}
# Bounded checks: the probe stops after 4 s or 16 MiB. The tests change the link between transfers, so
# every transfer probes afresh.
AGENT_ENV = {"DTN_NETCHECK_PROBE_SECONDS": "4", "DTN_NETCHECK_PROBE_MIB": "16", "DTN_NETCHECK_REUSE_SECONDS": "0"}


class World(ProductInBed):
    def __init__(self, bed, scratch: Path):
        super().__init__(bed, scratch, suffix="netcheck", portal_env={"DTN_STALL_SECONDS": "6"}, agent_env=AGENT_ENV)

    def check(self, receiver=None, timeout: float = 60, **body) -> dict:
        """An on-demand check, answered."""
        check = self.alice.call("POST", "/api/v1/network-checks", 201, json={
            "sender": self.sender["container_id"], "receiver": (receiver or self.receiver)["container_id"], **body})

        def done():
            row = self.alice.call("GET", f"/api/v1/network-checks/{check['check_id']}")
            return row if row["state"] != "pending" else None

        return wait_for(done, timeout, "the network check to be answered", 0.3)


@pytest.fixture(scope="module")
def world():
    yield from world_in_bed(World, "dtn-netcheck-", **CLEAN)


@pytest.fixture
def link(world, request):
    """The WAN, clean again before and after each test; the agents' logs on failure."""
    world.bed.link.up()
    world.bed.link.set(**CLEAN)
    yield world.bed.link
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        world.dump_logs()
    world.bed.link.up()
    world.bed.link.set(**CLEAN)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report
