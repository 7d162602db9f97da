"""The user story on a real docker engine, following docs/deployment.md command by command.

Three sites on one engine, each a copy of this checkout with its own `.env`: the portal (PostgreSQL,
TLS made by portal-init), Bob's receiver, Alice's sender. Alice and Bob sign up, register their
containers, Bob grants Alice, both sites come up from their compose files, and Alice sends a folder (a
200 MiB file among small ones in nested folders) by Bob's container ID: every file lands byte-identical
in Bob's receive folder, owned by the documented uid. The engine is inspected through the docker SDK
(health, users, read-only roots, capabilities, published ports, networks), and when it stops the
host's firewall, forwarding and links are as they were before it started.

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

import pytest
import requests

from tests.deploy.engine import doc
from tests.deploy.engine.conftest import PROJECTS, copy_checkout, fill_env
from tests.harness import Person, sha256, wait_for, write_random

pytestmark = [pytest.mark.engine, pytest.mark.timeout(900)]

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
            assert done.returncode == 0, (f"`{line}` failed ({done.returncode}):\n{done.stdout[-3000:]}\n"
                                          f"{done.stderr[-3000:]}\n{self.logs(project)}")
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


@pytest.fixture(scope="module")
def deployment(engine, tmp_path_factory):
    root = tmp_path_factory.mktemp("sites")
    # A second address of this host for Bob's machine: a bridge of its own (removed with the engine).
    for stale in engine.client.networks.list(names=["dtn-test-bob-host"]):
        stale.remove()
    network = engine.client.networks.create("dtn-test-bob-host", driver="bridge")
    gateway = network.attrs["IPAM"]["Config"][0]["Gateway"]
    run = Deployment(engine, root, bridge_address(), free_ports(1), receiver_address=gateway)
    try:
        yield bring_up(run)
    finally:
        for project, compose_file in PROJECTS.items():
            if project in run.sites:
                engine.compose(["-f", compose_file, "down", "-v", "--remove-orphans", "--timeout", "20"],
                               cwd=run.sites[project], check=False)


def bring_up(run: Deployment) -> Deployment:
    started = time.monotonic()
    # The portal's machine.
    portal = run.sites["portal"] = copy_checkout(run.root / "portal")
    run.secrets["POSTGRES_PASSWORD"] = secrets.token_hex(16)
    run.run_section("portal", "The portal", {
        "POSTGRES_PASSWORD": run.secrets["POSTGRES_PASSWORD"], "DTN_ALLOWED_HOSTS": run.address,
        "DTN_SITE_URL": run.portal_url, "PORTAL_HTTPS_PORT": str(run.portal_port)}, {})
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


def test_alice_sends_a_folder_to_bob_and_it_lands_byte_identical_owned_by_the_agents_uid(deployment):
    run = deployment
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


def test_every_container_runs_as_the_docs_say(deployment):
    run = deployment
    seen = set()
    for project in PROJECTS:
        for container in run.containers(project):
            container.reload()
            attrs, host = container.attrs, container.attrs["HostConfig"]
            service = container.labels["com.docker.compose.service"]
            seen.add(f"{project}/{service}")
            assert "no-new-privileges:true" in (host.get("SecurityOpt") or []), container.name
            if not attrs["Config"]["Image"].startswith(OURS):
                continue
            # Built here: the unprivileged user, nothing writable but volumes and /tmp, no capabilities;
            # tcp-tune alone is root with NET_ADMIN, in its site's namespace, and has exited.
            tune = service == "tcp-tune"
            assert attrs["Config"]["User"] == ("0:0" if tune else f"{UID}:{UID}"), container.name
            assert host["ReadonlyRootfs"] is True, container.name
            assert host["CapDrop"] == ["ALL"], container.name
            assert [c.removeprefix("CAP_") for c in host.get("CapAdd") or []] == (["NET_ADMIN"] if tune else []), \
                container.name
            assert "/tmp" in (host.get("Tmpfs") or {}), container.name
            if tune:
                assert attrs["State"]["Status"] == "exited" and attrs["State"]["ExitCode"] == 0, container.name
                assert host["NetworkMode"].startswith("container:"), container.name
            elif service != "portal-init":
                assert attrs["State"]["Health"]["Status"] == "healthy", container.name
    assert seen == {"portal/db", "portal/portal-init", "portal/portal", "receiver/agent", "receiver/tcp-tune",
                    "sender/agent", "sender/rclone", "sender/tcp-tune"}

    def published(project, service):
        ports = run.service(project, service).attrs["NetworkSettings"]["Ports"] or {}
        return {key: sorted({b["HostPort"] for b in bindings}) for key, bindings in ports.items() if bindings}

    assert published("portal", "portal") == {"8443/tcp": [str(run.portal_port)]}
    assert published("portal", "db") == {}
    assert published("sender", "rclone") == {} and published("sender", "agent") == {}
    # One port for every grant.
    port = run.facts["receiver_port"]
    assert published("receiver", "agent") == {f"{port}/tcp": [str(port)]}
    # PostgreSQL sits on an internal network alone with the portal.
    db_networks = run.service("portal", "db").attrs["NetworkSettings"]["Networks"]
    assert list(db_networks) == ["dtn-portal_backend"]
    assert run.engine.client.networks.get("dtn-portal_backend").attrs["Internal"] is True
    # The portal-init one-shot finished cleanly.
    assert run.service("portal", "portal-init").attrs["State"]["ExitCode"] == 0


IN_EFFECT = ["python", "-c", "import json; from agent import tcptune; print(json.dumps(tcptune.in_effect()))"]


def test_tcp_is_tuned_inside_the_sites_namespaces_and_the_host_is_untouched(deployment, engine):
    """The sender's namespace (rclone's, which the agent shares) and the receiver's: BBR on their routes
    (set by the one-shot tcp-tune), buffer limits from docker's sysctls; the host's own values as they
    were before the engine started."""
    import json

    run = deployment
    for project, service in (("sender", "agent"), ("sender", "rclone"), ("receiver", "agent")):
        code, output = run.service(project, service).exec_run(IN_EFFECT)
        assert code == 0, output
        settings = json.loads(output)
        assert settings["congestion_control"] == "bbr", (project, service, settings)
        assert settings["route_congestion_control"] == ["bbr"], settings
        assert settings["tcp_rmem"][2] == settings["tcp_wmem"][2] == 64 * 2**20, settings
        tune = run.service(project, "tcp-tune")
        assert tune.attrs["State"]["ExitCode"] == 0
        assert "congestion control bbr: applied on" in tune.logs().decode()
    host = {name: value for name, value in engine.before.sysctls}
    for name in ("net/ipv4/tcp_congestion_control", "net/ipv4/tcp_rmem", "net/ipv4/tcp_wmem"):
        assert (Path("/proc/sys") / name).read_text().strip() == host[name], name


def test_no_secret_appears_in_any_container_log(deployment):
    run = deployment
    # The grant's secret, as the receiver agent gets it (the sender's agent and rclone hold it too).
    answer = requests.get(f"{run.portal_url}/api/agent/v1/grants", verify=str(run.sites["portal"] / "portal.crt"),
                          headers={"Authorization": f"Bearer {run.secrets['receiver_token']}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    grant_secret = answer.json()["grants"][0]["secret_key"]
    logs = "\n".join(c.logs().decode(errors="replace") for p in PROJECTS for c in run.containers(p))
    assert logs.strip()
    for name, value in {**run.secrets, "grant secret": grant_secret}.items():
        if value:
            assert value not in logs, f"{name} appears in a container log"


def test_an_agent_that_cannot_write_its_receive_folder_says_the_command_that_fixes_it(deployment, tmp_path):
    """Docker makes a bind mount's missing host folder itself, owned by root: the agent (uid 10001) stops
    with the command to run on the host; run as given, the agent starts."""
    run = deployment
    missing = tmp_path / "not yet" / "incoming"
    image = run.service("receiver", "agent").attrs["Config"]["Image"]
    environment = {"DTN_PORTAL_URL": run.portal_url, "DTN_AGENT_TOKEN": "dtn_agent_0000_not-used",
                   "DTN_RECEIVE_DIR": "/data/receive", "DTN_RECEIVE_DIR_ON_HOST": str(missing),
                   "DTN_RECEIVER_HOST": run.address}

    def check_config():
        container = run.engine.client.containers.run(
            image, ["python", "-m", "agent", "--check-config"], environment=environment, detach=True,
            volumes={str(missing): {"bind": "/data/receive", "mode": "rw"}})
        try:
            status = container.wait(timeout=60)["StatusCode"]
            return status, container.logs().decode(errors="replace")
        finally:
            container.remove(force=True)

    status, output = check_config()
    assert missing.is_dir() and missing.stat().st_uid == 0  # docker made it, as root
    assert status == 2, output
    commands = re.findall(r"run `([^`]+)`", output)
    assert commands and commands[0] == f"chown {UID}:{UID} '{missing}'", output
    done = subprocess.run(["bash", "-c", commands[0]], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    status, output = check_config()
    assert status == 0 and "configuration is valid" in output, output


def test_once_the_engine_stops_the_host_is_as_it_was(engine, deployment):
    """Last: the sites down, the engine stopped, and the host's firewall tables (iptables and nftables),
    forwarding sysctls, links and routes exactly as before dockerd started. The network-bed tests that
    run after this file in `make test` depend on it."""
    run = deployment
    print(f"\ntimings: portal up {run.facts['portal_up_s']:.0f} s, three sites up {run.facts['sites_up_s']:.0f} s,"
          f" transfer {run.facts.get('transfer_s', 0):.1f} s")
    for project, compose_file in PROJECTS.items():
        engine.compose(["-f", compose_file, "down", "-v", "--remove-orphans", "--timeout", "20"],
                       cwd=run.sites[project])
    assert engine.stop() == []
