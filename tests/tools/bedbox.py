"""The whole product inside a test bed (tests/netbed): the portal in its namespace,
Bob's receiver agent serving TLS on the WAN with a grant to Alice, and Alice's
sender agent. Shared by the network-check suite and the data-path benchmark."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.procs import Person, wait_for
from tests.faults.conftest import BedAgent, BedPortal


class ProductInBed:
    def __init__(self, bed, scratch: Path, *, suffix: str, portal_env: dict | None = None,
                 portal_defaults: tuple[str, ...] = (), agent_env: dict | None = None, ready_seconds: float = 60):
        """`portal_env` is added to the portal's test environment; names in `portal_defaults`
        are removed from it (the product's default instead of the tests' value); `agent_env`
        goes to both agents' environment."""
        self.bed, self.scratch = bed, scratch
        self.logs = self.dir("logs")
        self.send_dir = self.dir("send")
        self.receive_dir = self.dir("received")
        self.portal = BedPortal(bed, self.dir("portal"))
        for name in portal_defaults:
            self.portal.env.pop(name, None)
        self.portal.env.update(portal_env or {})
        self.portal.start()
        self.agents: list[BedAgent] = []
        self.alice = Person(self.portal.url, f"alice-{suffix}")
        self.bob = Person(self.portal.url, f"bob-{suffix}")
        self.wan = bed.address("receiver", seen_from="sender")
        agent_env = agent_env or {}
        self.receiver = self.bob.register("bob-rx", role="receiver")
        self.agents.append(BedAgent(bed, "receiver", self.portal.agent_url, self.receiver["agent_token"],
                                    self.dir("bob-state"), self.logs, DTN_RECEIVE_DIR=str(self.receive_dir),
                                    DTN_RECEIVER_HOST=self.wan, DTN_RECEIVER_BIND=self.wan,
                                    DTN_RECEIVER_PORT="9443", DTN_RECEIVER_TLS="true", **agent_env).start())
        self.grant = self.bob.call("POST", "/api/v1/grants", 201, json={"grantee": self.alice.username,
                                                                        "receiver": self.receiver["container_id"]})
        self.sender = self.alice.register("alice-tx", role="sender")
        self.sender_agent = BedAgent(bed, "sender", self.portal.agent_url, self.sender["agent_token"],
                                     self.dir("alice-state"), self.logs, DTN_SEND_DIR=str(self.send_dir),
                                     **agent_env).start()
        self.agents.append(self.sender_agent)

        def ready():
            rx = self.bob.call("GET", f"/api/v1/containers/{self.receiver['container_id']}")
            tx = self.alice.call("GET", f"/api/v1/containers/{self.sender['container_id']}")
            grants = self.alice.call("GET", "/api/v1/grants")["received"]
            return (rx["online"] and rx["endpoint"].startswith("https://") and tx["online"]
                    and any(g.get("served") == "ok" for g in grants))

        wait_for(ready, ready_seconds, "Bob's receiver (TLS) and Alice's sender to come online", 0.3)

    def dir(self, name: str) -> Path:
        path = self.scratch / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def send(self, sources, **options) -> str:
        """Alice sends to Bob's receiver by its container ID."""
        return self.alice.call("POST", "/api/v1/transfers", 201, json={
            "sender": self.sender["container_id"], "receiver": self.receiver["container_id"],
            "sources": list(sources), **options})["transfer_id"]

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
