"""The network check on the test bed: a portal, Bob's TLS receiver and Alice's
sender agent in their namespaces (the fault suite's machinery), a WAN set per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.procs import Person, wait_for
from tests.faults.conftest import BedAgent, BedPortal, world_in_bed
from tests.netbed.plugin import pytest_sessionfinish  # noqa: F401

CLEAN = {"rate_mbit": 200, "rtt_ms": 2, "loss_pct": 0}
# Bounded checks: the probe stops after 4 s or 16 MiB. The tests change the link between transfers, so
# every transfer probes afresh.
AGENT_ENV = {"DTN_NETCHECK_PROBE_SECONDS": "4", "DTN_NETCHECK_PROBE_MIB": "16", "DTN_NETCHECK_REUSE_SECONDS": "0"}


class World:
    def __init__(self, bed, scratch: Path):
        self.bed, self.scratch = bed, scratch
        self.logs = self.dir("logs")
        self.portal = BedPortal(bed, self.dir("portal"))
        self.portal.env["DTN_STALL_SECONDS"] = "6"
        self.portal.start()
        self.alice = Person(self.portal.url, "alice-netcheck")
        self.bob = Person(self.portal.url, "bob-netcheck")
        self.send_dir = self.dir("send")
        self.receive_dir = self.dir("received")
        self.wan = bed.address("receiver", seen_from="sender")
        self.receiver = self.bob.register("bob-rx", role="receiver")
        self.agents = [BedAgent(bed, "receiver", self.portal.agent_url, self.receiver["agent_token"],
                                self.dir("bob-state"), self.logs, DTN_RECEIVE_DIR=str(self.receive_dir),
                                DTN_RECEIVER_HOST=self.wan, DTN_RECEIVER_BIND=self.wan,
                                DTN_RECEIVER_PORTS="9443-9452", DTN_RECEIVER_TLS="true").start()]
        self.grant = self.bob.call("POST", "/api/v1/grants", 201, json={"grantee": self.alice.username,
                                                                        "receiver": self.receiver["container_id"]})
        self.sender = self.alice.register("alice-tx", role="sender")
        self.agents.append(BedAgent(bed, "sender", self.portal.agent_url, self.sender["agent_token"],
                                    self.dir("alice-state"), self.logs, DTN_SEND_DIR=str(self.send_dir),
                                    **AGENT_ENV).start())

        def ready():
            rx = self.bob.call("GET", f"/api/v1/containers/{self.receiver['container_id']}")
            tx = self.alice.call("GET", f"/api/v1/containers/{self.sender['container_id']}")
            grants = self.alice.call("GET", "/api/v1/grants")["received"]
            return (rx["online"] and rx["endpoint"].startswith("https://") and tx["online"]
                    and any(g.get("endpoint") for g in grants))

        wait_for(ready, 60, "Bob's receiver (TLS) and Alice's sender to come online", 0.3)

    def dir(self, name: str) -> Path:
        path = self.scratch / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def check(self, receiver=None, timeout: float = 60, **body) -> dict:
        """An on-demand check, answered."""
        check = self.alice.call("POST", "/api/v1/network-checks", 201, json={
            "sender": self.sender["container_id"], "receiver": (receiver or self.receiver)["container_id"], **body})

        def done():
            row = self.alice.call("GET", f"/api/v1/network-checks/{check['check_id']}")
            return row if row["state"] != "pending" else None

        return wait_for(done, timeout, "the network check to be answered", 0.3)

    def send(self, sources, timeout_state=None, **options) -> str:
        return self.alice.call("POST", "/api/v1/transfers", 201, json={
            "sender": self.sender["container_id"], "receiver": self.receiver["container_id"],
            "sources": list(sources), **options})["transfer_id"]

    def kinds(self, transfer_id) -> list[dict]:
        return self.alice.events(transfer_id)

    def dump_logs(self) -> None:
        for agent in self.agents:
            print(f"--- {agent.log_path.name} ---")
            print("\n".join(agent.log().splitlines()[-40:]))
        print("--- portal ---")
        print("\n".join(self.portal.log().splitlines()[-30:]))

    def close(self) -> None:
        for agent in reversed(self.agents):
            agent.stop()
        self.portal.stop()
        self.portal.relay.close()


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
