"""The user story on a real docker engine, following docs/deployment.md command by command (tests/deploy/
engine/sites.py): the portal as "The portal" runs it (PostgreSQL, TLS made by portal-init). Alice sends a folder
(a 200 MiB file among small ones in nested folders) by Bob's container ID: every file lands byte-identical in
Bob's receive folder, owned by the documented uid. The engine is inspected through the docker SDK (health,
users, read-only roots, capabilities, published ports, networks), and when it stops the host's firewall,
forwarding and links are as they were before it started. test_compose_replicas.py runs the same story
through Caddy and two portal replicas."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import requests

from tests.deploy.engine.conftest import PROJECTS
from tests.deploy.engine.sites import OURS, UID, deployed, send_the_dataset

pytestmark = [pytest.mark.engine, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def deployment(engine, tmp_path_factory):
    yield from deployed(engine, tmp_path_factory, "The portal")


def test_alice_sends_a_folder_to_bob_and_it_lands_byte_identical_owned_by_the_agents_uid(deployment):
    send_the_dataset(deployment)


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
