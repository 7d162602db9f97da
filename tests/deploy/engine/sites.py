"""The three sites of the user story on a real docker engine, brought up by the commands of
docs/deployment.md (tests/deploy/engine/doc.py), each a copy of this checkout with its own `.env`: the
portal (by the section the test names: one portal with its own TLS, or Caddy in front of replicas), Bob's
receiver, Alice's sender. Alice and Bob sign up, register their containers, Bob grants Alice; the test
then sends.

Every address is one of the engine's bridges on this host: the portal is reached at docker0's gateway,
Bob's receiver at the gateway of a network made for it (a receiver may not advertise the portal's own
address). A site reaches another only through its published ports, as it would across machines, and
nothing leaves the host."""

from __future__ import annotations

import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.deploy.engine import doc
from tests.deploy.engine.conftest import PROJECTS, copy_checkout, fill_env
from tests.harness import Person, sha256, wait_for, write_random

UID = 10001  # the images' user (docs/deployment.md)
MiB = 2**20
OURS = "dtn-in-a-box/"


def bridge_address() -> str:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "docker0"], capture_output=True, text=True).stdout
    match = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", out)
    assert match, f"docker0 has no IPv4 address: {out!r}"
    return match.group(1)


def free_ports(count: int) -> int:
    """The first of `count` consecutive ports free on every address."""
    for _ in range(200):
        first = random.randrange(20000, 60000 - count)
        socks = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("0.0.0.0", port))
            return first
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise AssertionError("no free range of ports")


@dataclass
class Deployment:
    engine: object
    root: Path
    address: str
    portal_port: int
    receiver_address: str = ""
    sites: dict[str, Path] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    facts: dict = field(default_factory=dict)

    @property
    def portal_url(self) -> str:
        return f"https://{self.address}:{self.portal_port}"

    def run_section(self, project: str, title: str, values: dict[str, str], folders: dict[str, Path]) -> None:
        """The section's commands, in order, in the site's folder; .env filled in after it is made."""
        assert doc.env_names(title) == set(values), (
            f"'{title}' in docs/deployment.md tells a person to set {sorted(doc.env_names(title))}; "
            f"the test sets {sorted(values)}")
        site = self.sites[project]
        for line in doc.commands(title):
            for example, folder in folders.items():
                line = line.replace(example, str(folder))
            done = subprocess.run(["bash", "-c", line], cwd=site, env=self.engine.env, capture_output=True,
                                  text=True, timeout=900)
            # compose's own words (stderr) first: its last lines say what failed; the build log is long.
            assert done.returncode == 0, (f"`{line}` failed ({done.returncode}):\n{done.stderr[-2500:]}\n"
                                          f"{self.logs(project, tail=25)}\n--- stdout:\n{done.stdout[-1500:]}")
            if line.startswith("cp .env.example .env"):
                assert (site / ".env").stat().st_mode & 0o777 == 0o600
                fill_env(site, values)
            if " up -d" in line:
                self.wait_healthy(project)

    def containers(self, project: str) -> list:
        return self.engine.client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project=dtn-{project}"})

    def service(self, project: str, name: str):
        found = [c for c in self.containers(project) if c.labels.get("com.docker.compose.service") == name]
        assert len(found) == 1, f"{project}/{name}: {[c.name for c in found]}"
        return found[0]

    def logs(self, project: str, tail: int = 60) -> str:
        parts = []
        for container in self.containers(project):
            text = container.logs(tail=tail).decode(errors="replace")
            parts.append(f"--- {container.name} ({container.status})\n{text}")
        return "\n".join(parts)

    def wait_healthy(self, project: str, timeout: float = 240) -> None:
        def states():
            found = {}
            for container in self.containers(project):
                container.reload()
                state = container.attrs["State"]
                if state.get("Health"):
                    found[container.name] = state["Health"]["Status"]
                elif state["Status"] == "exited":
                    found[container.name] = f"exited {state['ExitCode']}"
                else:
                    found[container.name] = state["Status"]
            return found

        def ready():
            now = states()
            bad = {name: s for name, s in now.items() if s in ("unhealthy", "restarting")
                   or (s.startswith("exited") and s != "exited 0")}
            assert not bad, f"{project}: {bad}\n{self.logs(project)}"
            return now and all(s in ("healthy", "exited 0") for s in now.values())

        try:
            wait_for(ready, timeout, f"every service of {project} to be healthy", 1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {states()}\n{self.logs(project)}") from None


def make_dataset(folder: Path) -> dict[str, str]:
    """A folder of nested folders: a 200 MiB file among small ones, names with spaces and non-ASCII."""
    write_random(folder / "dataset" / "raw" / "run 7.bin", 200 * MiB)
    for index in range(40):
        sub = folder / "dataset" / "frames" / f"séance {index % 4}" / ("deep" if index % 3 else "")
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"frame {index:03d}.dat").write_bytes(os.urandom(512 + index * 97))
    return {p.relative_to(folder).as_posix(): sha256(p) for p in folder.rglob("*") if p.is_file()}


def deployed(engine, tmp_path_factory, portal_section: str):
    """Three sites up (the portal by `portal_section` of docs/deployment.md), then all of them down."""
    root = tmp_path_factory.mktemp("sites")
    # A second address of this host for Bob's machine: a bridge of its own (removed with the engine).
    for stale in engine.client.networks.list(names=["dtn-test-bob-host"]):
        stale.remove()
    network = engine.client.networks.create("dtn-test-bob-host", driver="bridge")
    gateway = network.attrs["IPAM"]["Config"][0]["Gateway"]
    run = Deployment(engine, root, bridge_address(), free_ports(1), receiver_address=gateway)
    try:
        yield bring_up(run, portal_section)
    finally:
        for project, compose_file in PROJECTS.items():
            if project in run.sites:
                engine.compose(["-f", compose_file, "--profile", "proxy", "down", "-v", "--remove-orphans",
                                "--timeout", "20"], cwd=run.sites[project], check=False)


# Caddy's proxy network and its address there (docker-compose.portal.yml's defaults): the one sender of
# forwarded headers the replicas believe.
PROXY_SUBNET = "172.31.254.0/24"
CADDY_ADDRESS = "172.31.254.2"


def bring_up(run: Deployment, portal_section: str) -> Deployment:
    started = time.monotonic()
    # The portal's machine.
    portal = run.sites["portal"] = copy_checkout(run.root / "portal")
    run.secrets["POSTGRES_PASSWORD"] = secrets.token_hex(16)
    values = {"POSTGRES_PASSWORD": run.secrets["POSTGRES_PASSWORD"], "DTN_ALLOWED_HOSTS": run.address,
              "DTN_SITE_URL": run.portal_url, "PORTAL_HTTPS_PORT": str(run.portal_port)}
    if portal_section == "More than one portal":
        # Caddy's own CA (no ACME from here), the replicas' port on loopback only, the access logs on.
        values.update(DTN_PORTAL_HOST=run.address, CADDY_TLS_OPTION="local_certs", PORTAL_HTTP_PORT=str(free_ports(1)),
                      PORTAL_PUBLISH="127.0.0.1::8443", DTN_BEHIND_PROXY="true",
                      DTN_FORWARDED_ALLOW_IPS=CADDY_ADDRESS, DTN_ACCESS_LOG="true")
    run.run_section("portal", portal_section, values, {})
    ca = portal / "portal.crt"
    assert ca.read_text().startswith("-----BEGIN CERTIFICATE-----")
    run.facts["portal_up_s"] = time.monotonic() - started

    # People, through the portal's API over its own TLS.
    alice = Person(run.portal_url, "alice", verify=str(ca))
    bob = Person(run.portal_url, "bob", verify=str(ca))
    receiver = bob.register("bob-receiver", role="receiver")
    sender = alice.register("alice-sender", role="sender")
    grant = bob.call("POST", "/api/v1/grants", 201, json={"grantee": "alice", "receiver": receiver["container_id"]})
    run.secrets.update(receiver_token=receiver["agent_token"], sender_token=sender["agent_token"])
    run.facts.update(alice=alice, bob=bob, receiver=receiver, sender=sender, grant=grant)

    # Bob's machine: the receive folder does not exist yet; the doc's commands make it.
    site = run.sites["receiver"] = copy_checkout(run.root / "receiver")
    shutil.copy(ca, site / "portal.crt")
    incoming = run.root / "bob" / "incoming"
    port = free_ports(1)
    run.run_section("receiver", "A receiver site", {
        "DTN_PORTAL_URL": run.portal_url, "DTN_AGENT_TOKEN": receiver["agent_token"],
        "RECEIVE_FOLDER": str(incoming), "DTN_RECEIVER_HOST": run.receiver_address,
        "DTN_RECEIVER_PORT": str(port), "PORTAL_CA_FILE": str(site / "portal.crt")},
        {doc.EXAMPLE_RECEIVE_FOLDER: incoming})
    run.facts.update(incoming=incoming, receiver_port=port)

    # Alice's machine: her data, then the doc's commands.
    site = run.sites["sender"] = copy_checkout(run.root / "sender")
    shutil.copy(ca, site / "portal.crt")
    outgoing = run.root / "alice" / "outgoing"
    run.facts["expected"] = make_dataset(outgoing)
    run.secrets["rc_pass"] = secrets.token_hex(24)
    run.run_section("sender", "A sender site", {
        "DTN_PORTAL_URL": run.portal_url, "DTN_AGENT_TOKEN": sender["agent_token"], "SEND_FOLDER": str(outgoing),
        "DTN_RCLONE_RC_USER": "dtn", "DTN_RCLONE_RC_PASS": run.secrets["rc_pass"],
        "PORTAL_CA_FILE": str(site / "portal.crt")},
        {doc.EXAMPLE_SEND_FOLDER: outgoing})
    run.facts["sites_up_s"] = time.monotonic() - started

    # Both online in the portal, and Bob's receiver serving the grant over TLS.
    def online():
        boxes = {box["container_id"]: box for box in bob.call("GET", "/api/v1/containers")["results"]}
        mine = alice.call("GET", f"/api/v1/containers/{sender['container_id']}")
        return boxes[receiver["container_id"]]["online"] and mine["online"]

    wait_for(online, 60, "both agents online in the portal", 1)

    def served():
        rows = bob.call("GET", "/api/v1/grants")["given"]
        return next((row["endpoint"] for row in rows if row["grant_id"] == grant["grant_id"]
                     and row["served"] == "ok"), None)

    run.facts["grant_endpoint"] = wait_for(served, 60, "the grant to be served", 1)
    return run


def send_the_dataset(run: Deployment) -> dict:
    """Alice sends the dataset folder by Bob's container ID; every file lands byte-identical, owned by the
    documented uid, through the pinned certificate. The transfer's record."""
    alice, sender, receiver, grant = (run.facts[k] for k in ("alice", "sender", "receiver", "grant"))
    assert run.facts["grant_endpoint"] == f"https://{run.receiver_address}:{run.facts['receiver_port']}"
    started = time.monotonic()
    transfer_id = alice.call("POST", "/api/v1/transfers", 201, json={
        "sender": sender["container_id"], "receiver": receiver["container_id"], "sources": ["dataset"],
        "prefix": "from-alice", "label": "compose story"})["transfer_id"]
    record = alice.wait_state(transfer_id, ("succeeded", "failed", "canceled"), timeout=300)
    assert record["state"] == "succeeded", (record, run.logs("sender"), run.logs("receiver"))
    run.facts["transfer_s"] = time.monotonic() - started

    landed_root = run.facts["incoming"] / grant["bucket"] / "from-alice"
    landed = {p.relative_to(landed_root).as_posix(): sha256(p) for p in landed_root.rglob("*") if p.is_file()}
    assert landed == run.facts["expected"]
    assert record["files"]["verified"] == len(run.facts["expected"])
    # Owned by the documented uid, files and folders alike: what Bob's own tools will see.
    for path in [landed_root, *landed_root.rglob("*")]:
        assert path.stat().st_uid == UID, path
    # The pinned certificate, through the published port.
    pinned = [e["message"] for e in alice.events(transfer_id) if e["kind"] == "tls"]
    assert pinned and "presents the pinned certificate" in pinned[0]
    return record
