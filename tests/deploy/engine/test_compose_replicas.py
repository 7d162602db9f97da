"""The user story on a real docker engine through Caddy and two portal replicas (issue 24), by the commands
of docs/deployment.md, "More than one portal": `--profile proxy up --scale portal=2`, Caddy's own CA (no ACME
from a test), its root copied out as `portal.crt` and given to both agent sites as their trust file. Alice's
folder lands byte-identical at Bob's; both replicas' access logs show agents' requests; a client's forged
`X-Forwarded-For` is not what the portal sees, Caddy's is; the replicas publish nothing but loopback. When the
engine stops, the host is as it was."""

from __future__ import annotations

import re

import pytest
import requests

from tests.deploy.engine.conftest import PROJECTS
from tests.deploy.engine.sites import PROXY_SUBNET, deployed, send_the_dataset

pytestmark = [pytest.mark.engine, pytest.mark.timeout(900)]

AGENT_REQUEST = re.compile(r'"(GET|POST|PATCH) /api/agent/v1/')


@pytest.fixture(scope="module")
def deployment(engine, tmp_path_factory):
    yield from deployed(engine, tmp_path_factory, "More than one portal")


def replicas(run) -> list:
    found = [c for c in run.containers("portal") if c.labels.get("com.docker.compose.service") == "portal"]
    assert len(found) == 2, [c.name for c in found]
    return found


def test_alice_sends_through_caddy_and_two_replicas_and_the_folder_lands_byte_identical(deployment):
    run = deployment
    # The agents and people trust the portal through Caddy's root, the one documented file.
    ca = (run.sites["portal"] / "portal.crt").read_text()
    assert ca.startswith("-----BEGIN CERTIFICATE-----")
    assert (run.sites["sender"] / "portal.crt").read_text() == ca
    send_the_dataset(run)
    # Both replicas served the agents (round robin over the proxy network).
    for replica in replicas(run):
        log = replica.logs().decode(errors="replace")
        assert len(AGENT_REQUEST.findall(log)) >= 3, (replica.name, log[-2000:])


def test_caddy_fronts_the_replicas_which_publish_only_on_loopback(deployment):
    run = deployment
    caddy = run.service("portal", "caddy")
    caddy.reload()
    assert caddy.attrs["State"]["Health"]["Status"] == "healthy"
    bindings = caddy.attrs["NetworkSettings"]["Ports"]["443/tcp"]
    assert {b["HostPort"] for b in bindings} == {str(run.portal_port)}
    for replica in replicas(run):
        replica.reload()
        assert replica.attrs["State"]["Health"]["Status"] == "healthy", replica.name
        published = [b for b in replica.attrs["NetworkSettings"]["Ports"]["8443/tcp"] or []]
        assert published and {b["HostIp"] for b in published} == {"127.0.0.1"}, published
        networks = replica.attrs["NetworkSettings"]["Networks"]
        assert "portal-upstream" in networks["dtn-portal_proxy"]["Aliases"]
    assert run.engine.client.networks.get("dtn-portal_proxy").attrs["IPAM"]["Config"][0]["Subnet"] == PROXY_SUBNET


def test_a_forged_forwarded_header_is_not_believed_caddys_is(deployment):
    run = deployment
    ca = str(run.sites["portal"] / "portal.crt")
    marker = "/healthz?forged-probe"
    for _ in range(4):  # round robin: both replicas see one
        answer = requests.get(f"{run.portal_url}{marker}", verify=ca, timeout=30,
                              headers={"X-Forwarded-For": "203.0.113.9"})
        assert answer.status_code == 200
    seen = []
    for replica in replicas(run):
        for line in replica.logs().decode(errors="replace").splitlines():
            if "forged-probe" in line:
                seen.append(line)
    assert len(seen) == 4, seen
    for line in seen:
        client = re.search(r"(\d+\.\d+\.\d+\.\d+):\d+ - \"GET", line)
        assert client, line
        # Not the client's word, and not Caddy's own address on the proxy network: the address Caddy saw.
        assert client.group(1) != "203.0.113.9", line
        assert not client.group(1).startswith(PROXY_SUBNET.rsplit(".", 1)[0] + "."), line


def test_once_the_engine_stops_the_host_is_as_it_was(engine, deployment):
    run = deployment
    print(f"\ntimings: portal up {run.facts['portal_up_s']:.0f} s, three sites up {run.facts['sites_up_s']:.0f} s,"
          f" transfer {run.facts.get('transfer_s', 0):.1f} s")
    for project, compose_file in PROJECTS.items():
        engine.compose(["-f", compose_file, "--profile", "proxy", "down", "-v", "--remove-orphans",
                        "--timeout", "20"], cwd=run.sites[project])
    assert engine.stop() == []
