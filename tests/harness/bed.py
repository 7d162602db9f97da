"""The whole product inside the test bed (tests/netbed): the portal in its namespace,
Bob's receiver agents serving TLS on the WAN with a grant to Alice each, and Alice's
sender agents. The test process stays in the host's namespace and reaches the portal
through a relay. Shared by the fault suite, the network-check suite and the data-path
benchmark."""

from __future__ import annotations

from pathlib import Path

from tests.harness.agent import Agent
from tests.harness.files import wait_for
from tests.harness.people import Person
from tests.harness.places import InBed
from tests.harness.portal import PortalServer


class ProductInBed:
    def __init__(self, bed, scratch: Path, *, suffix: str, portal_env: dict | None = None,
                 portal_defaults: tuple[str, ...] = (), agent_env: dict | None = None, ready_seconds: float = 60,
                 sender: bool = True):
        """`portal_env` is added to the portal's test environment; names in `portal_defaults`
        are removed from it (the product's default instead of the tests' value); `agent_env`
        goes to every agent's environment. Without `sender`, senders come with add_sender()."""
        self.bed, self.scratch = bed, scratch
        self.logs = self.dir("logs")
        self.send_dir = self.dir("send")
        self.receive_dir = self.dir("received")
        self.agent_env = agent_env or {}
        settings = {"DTN_HEARTBEAT_SECONDS": "2", **(portal_env or {})}
        for name in portal_defaults:
            settings.pop(name, None)
        self.portal = PortalServer(self.dir("portal"), place=InBed(bed, "portal"), **settings).start()
        self.agents: list[Agent] = []
        self.alice = Person(self.portal.url, f"alice-{suffix}")
        self.bob = Person(self.portal.url, f"bob-{suffix}")
        self.wan = bed.address("receiver", seen_from="sender")
        self.receiver, self.receiver_agent, self.grant = self.add_receiver("rx", self.receive_dir, 9443,
                                                                           ready_seconds)
        if sender:
            self.sender, (self.sender_agent,) = self.add_sender("tx")
            wait_for(lambda: self.alice.call("GET", f"/api/v1/containers/{self.sender['container_id']}")["online"],
                     ready_seconds, "Alice's sender to come online", 0.3)

    def dir(self, name: str) -> Path:
        path = self.scratch / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def add_receiver(self, name: str, receive_dir: Path, port: int, ready_seconds: float = 60, **env):
        """Bob's receiver `bob-<name>` serving TLS on the WAN at `port`, with a grant to Alice: (its
        container, its agent, the grant), once it says it serves the grant."""
        box = self.bob.register(f"bob-{name}", role="receiver")
        agent = Agent(self.portal.agent_url, box["agent_token"], None, self.dir(f"bob-{name}-state"), self.logs,
                      place=InBed(self.bed, "receiver"), DTN_RECEIVE_DIR=str(receive_dir),
                      DTN_RECEIVER_HOST=self.wan, DTN_RECEIVER_BIND=self.wan,
                      DTN_RECEIVER_PORT=str(port), DTN_RECEIVER_TLS="true",
                      **{**self.agent_env, **env}).start()
        self.agents.append(agent)
        grant = self.bob.call("POST", "/api/v1/grants", 201, json={"grantee": self.alice.username,
                                                                   "receiver": box["container_id"]})

        def serving():
            row = self.bob.call("GET", f"/api/v1/containers/{box['container_id']}")
            given = {g["grant_id"]: g for g in self.bob.call("GET", "/api/v1/grants")["given"]}
            served = given[grant["grant_id"]]["served"] == "ok"
            return row["online"] and row["endpoint"].startswith("https://") and served

        wait_for(serving, ready_seconds, f"Bob's receiver {name} to come online with TLS and serve the grant", 0.3)
        return box, agent, grant

    def add_sender(self, name: str, count: int = 1, **env) -> tuple[dict, list[Agent]]:
        """Alice's sender `alice-<name>` and `count` agents for it (one container token, each agent its
        own state), started."""
        box = self.alice.register(f"alice-{name}", role="sender")
        agents = []
        for index in range(count):
            agent = Agent(self.portal.agent_url, box["agent_token"], self.send_dir,
                          self.dir(f"alice-{name}-state-{index}"), self.logs, place=InBed(self.bed, "sender"),
                          **{**self.agent_env, **env}).start()
            self.agents.append(agent)
            agents.append(agent)
        return box, agents

    def grant_for(self, receiver_box: dict) -> dict:
        """Bob's grant on that receiver as the portal lists it now."""
        rows = self.bob.call("GET", "/api/v1/grants")["given"]
        for row in rows:
            if receiver_box["container_id"] in (row.get("receiver"), row.get("receiver_id")):
                return row
        raise AssertionError(f"no grant for {receiver_box['container_id']}: {rows}")

    def send(self, sources, **options) -> str:
        """Alice sends to Bob's receiver by its container ID."""
        return self.alice.call("POST", "/api/v1/transfers", 201, json={
            "sender": self.sender["container_id"], "receiver": self.receiver["container_id"],
            "sources": list(sources), **options})["transfer_id"]

    def dump_logs(self, lines: int = 40, leave_out: tuple[str, ...] = ()) -> None:
        for agent in self.agents:
            text = agent.log()
            if text:
                print(f"--- {agent.log_path.name} (last lines) ---")
                kept = [line for line in text.splitlines() if not any(words in line for words in leave_out)]
                print("\n".join(kept[-lines:]))
        print("--- portal (last lines) ---")
        print("\n".join(self.portal.log().splitlines()[-30:]))

    def close(self) -> None:
        for agent in reversed(self.agents):
            agent.stop()
        self.portal.close()
