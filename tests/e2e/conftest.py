"""Fixtures for end-to-end tests of the agents: one portal server for the
session, and per test a `Site`: a fresh sender container, its send folder and
state dir, a real S3 server with fresh keys, and agent processes started on
demand. Everything a test starts is stopped, and its files removed, at teardown."""

from __future__ import annotations

import itertools

import pytest

from tests.harness import Agent, Person, PortalServer, S3Server, Scratch, Sidecar, new_keys

_names = itertools.count(1)


@pytest.fixture(scope="session")
def portal():
    # Quick heartbeats: side-channel tasks ride on them, and tests should not wait 15 s.
    with PortalServer(DTN_HEARTBEAT_SECONDS="2") as server:
        yield server


@pytest.fixture(scope="session")
def alice(portal):
    return Person(portal.url, "alice-agent-e2e")


class Site:
    def __init__(self, portal, person: Person, scratch: Scratch):
        self.portal, self.person, self.scratch = portal, person, scratch
        self.send_dir = scratch / "send"
        self.recv_dir = scratch / "recv"
        self.logs = scratch / "logs"
        for path in (self.send_dir, self.recv_dir, self.logs):
            path.mkdir()
        self.container = person.register(f"sender-{next(_names)}")
        self.token = self.container["agent_token"]
        self.agents: list[Agent] = []
        self.servers: list = []  # S3 servers and rclone sidecars, stopped at the end
        self.bucket = "landing"
        self.s3 = self.s3_server()
        self.s3.make_bucket(self.bucket)
        self.s3.start()

    def s3_server(self, **kwargs) -> S3Server:
        access, secret = new_keys()
        server = S3Server(self.recv_dir, access, secret, log_dir=self.logs, **kwargs)
        self.servers.append(server)
        return server

    def agent(self, state: str = "state", secrets: dict | None = None, sidecar: Sidecar | None = None,
              **env) -> Agent:
        process = Agent(self.portal.url, self.token, self.send_dir, self.scratch / state, self.logs,
                        sidecar=sidecar, secrets=secrets, **env)
        self.agents.append(process)
        return process

    def sidecar(self) -> Sidecar:
        sidecar = Sidecar(self.logs).start()
        self.servers.append(sidecar)
        return sidecar

    def send(self, sources, s3: S3Server | None = None, **options) -> str:
        return self.person.send(self.container["container_id"], list(sources), s3 or self.s3, self.bucket, **options)

    def landed(self, prefix: str = ""):
        base = self.recv_dir / self.bucket
        return base / prefix if prefix else base

    def close(self):
        for agent in self.agents:
            agent.stop()
        for server in self.servers:
            server.stop()
        for agent in self.agents:
            text = agent.log()
            if text:
                print(f"--- {agent.log_path.name} (last lines) ---")
                print("\n".join(text.splitlines()[-80:]))
        self.scratch.remove()


@pytest.fixture
def site(portal, alice):
    scratch = Scratch("dtn-e2e-site-")
    made = None
    try:
        made = Site(portal, alice, scratch)
        yield made
    finally:
        if made is not None:
            made.close()
        else:
            scratch.remove()
