"""A portal you can monitor, watched during a real transfer between two real agents: /metrics scraped from a
portal with two server processes agrees with the API at every scrape, and every line the portal and both
agents log for the run is a JSON object carrying the transfer's and the container's IDs."""

from __future__ import annotations

import json
import re

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import Agent, Person, PortalServer, Scratch, wait_for, write_random
from tests.tools.net import free_port

pytestmark = pytest.mark.e2e

TOKEN = "metrics-token-for-the-test-0123456789"


@pytest.fixture(scope="module")
def portal():
    # Loopback is not among the allowed networks: this test's scrapes get through with the token only.
    with PortalServer(DTN_HEARTBEAT_SECONDS="2", DTN_WEB_WORKERS="2", DTN_LOG_FORMAT="json", DTN_ACCESS_LOG="true",
                      DTN_METRICS_TOKEN=TOKEN, DTN_METRICS_ALLOW_IPS="192.0.2.0/24") as server:
        yield server


def scrape(portal) -> dict:
    """{(name, labels): value} of one scrape."""
    response = requests.get(f"{portal.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    values = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def state(values: dict, name: str) -> float:
    return values[("dtn_transfers", (("state", name),))]


def moved(values: dict) -> float:
    return values[("dtn_transfer_bytes_transferred_total", ())]


def verified(values: dict) -> float:
    return values[("dtn_transfer_bytes_verified_total", ())]


def test_metrics_are_refused_without_the_token_or_an_allowed_network(portal):
    url = f"{portal.url}/metrics"
    refused = requests.get(url, timeout=10)
    assert refused.status_code == 403 and "DTN_METRICS_ALLOW_IPS" in refused.json()["error"]
    wrong = requests.get(url, headers={"Authorization": "Bearer not-the-token"}, timeout=10)
    assert wrong.status_code == 401 and wrong.json() == {"error": "wrong metrics token", "field": None}
    assert TOKEN not in wrong.text
    posted = requests.post(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert posted.status_code == 405 and posted.json()["error"] == "metrics are read with GET"


@pytest.fixture(scope="module")
def run(portal):
    """Alice sends to Bob's receiver (granted), slowly enough to be watched, both agents logging JSON;
    every scrape and API figure seen on the way, and the logs, for the tests below."""
    scratch = Scratch("dtn-metrics-")
    agents = []
    try:
        alice, bob = Person(portal.url, "alice-metrics"), Person(portal.url, "bob-metrics")
        sender = alice.register("alice-sender")
        receiver = bob.register("bob-receiver", role="receiver")
        grant = bob.call("POST", "/api/v1/grants", 201,
                         json={"grantee": alice.username, "receiver": receiver["container_id"]})
        send_dir, receive_dir, logs = scratch / "send", scratch / "recv", scratch / "logs"
        for path in (send_dir, receive_dir, logs):
            path.mkdir()
        write_random(send_dir / "run" / "big.bin", 12 * 2**20)
        for index in range(3):
            write_random(send_dir / "run" / f"small-{index}.dat", 10_000 + index)
        agents.append(Agent(portal.url, receiver["agent_token"], None, scratch / "bob-state", logs,
                            DTN_RECEIVE_DIR=str(receive_dir), DTN_RECEIVER_HOST="127.0.0.1",
                            DTN_RECEIVER_PORT=str(free_port()), DTN_LOG_FORMAT="json").start())
        agents.append(Agent(portal.url, sender["agent_token"], send_dir, scratch / "alice-state", logs,
                            DTN_LOG_FORMAT="json").start())

        def served():
            given = bob.call("GET", "/api/v1/grants")["given"]
            return any(g["grant_id"] == grant["grant_id"] and g["served"] == "ok" for g in given)

        wait_for(served, 30, "Bob's receiver to serve Alice's grant", 0.3)
        before = scrape(portal)
        transfer_id = alice.call("POST", "/api/v1/transfers", 201, json={
            "sender": sender["container_id"], "receiver": receiver["container_id"], "sources": ["run"],
            "bandwidth_limit": "2M"})["transfer_id"]
        # Scrape, ask the API, scrape: the API's figure lies between the two scrapes around it, whichever
        # of the two server processes answered each.
        seen = []
        while True:
            first = scrape(portal)
            record = alice.transfer(transfer_id)
            second = scrape(portal)
            seen.append((first, record, second))
            if record["state"] in ("succeeded", "failed", "canceled"):
                break
            assert len(seen) < 400, "the transfer did not finish"
        final = scrape(portal)
        containers = alice.call("GET", "/api/v1/containers")["results"] + bob.call("GET", "/api/v1/containers")["results"]
        yield {"portal": portal, "transfer_id": transfer_id, "sender": sender, "receiver": receiver, "before": before,
               "seen": seen, "final": final, "record": alice.transfer(transfer_id), "alice": alice,
               "containers": containers, "agents": agents}
    finally:
        for agent in agents:
            agent.stop()
            print(f"--- {agent.log_path.name} (last lines) ---\n" + "\n".join(agent.log().splitlines()[-30:]))
        scratch.remove()


def test_bytes_and_states_move_during_a_transfer_and_equal_the_apis_figures(run):
    record, seen, final = run["record"], run["seen"], run["final"]
    assert record["state"] == "succeeded", record
    assert moved(run["before"]) == 0 and state(run["before"], "active") == 0
    for first, api, second in seen:
        assert moved(first) <= api["bytes"]["transferred"] <= moved(second)
        assert verified(first) <= api["bytes"]["verified"] <= verified(second)
        assert state(first, "succeeded") <= (api["state"] == "succeeded") <= state(second, "succeeded")
    figures = [moved(first) for first, _, _ in seen] + [moved(final)]
    assert figures == sorted(figures), "bytes went back between scrapes: a worker's own count, not the portal's"
    assert len({f for f in figures if 0 < f < record["bytes"]["total"]}) >= 3, figures  # seen moving
    assert any(state(first, "active") == 1 for first, _, _ in seen)
    # At the end every figure is the API's.
    assert moved(final) == record["bytes"]["transferred"] >= record["bytes"]["total"] > 12 * 2**20
    assert verified(final) == record["bytes"]["verified"] == record["bytes"]["total"]
    assert (state(final, "succeeded"), state(final, "active"), state(final, "queued")) == (1, 0, 0)
    online = {c["role"]: c["online"] for c in run["containers"]}
    assert final[("dtn_agents_online", (("role", "sender"),))] == int(online["sender"]) == 1
    assert final[("dtn_agents_online", (("role", "receiver"),))] == int(online["receiver"]) == 1
    # The claim of this transfer's command, queued while the agent held a long-poll claim: within seconds.
    assert final[("dtn_claim_latency_seconds_count", ())] == 1
    assert final[("dtn_claim_latency_seconds_bucket", (("le", "5.0"),))] == 1
    # Its value is counted in tests/portal/test_metrics.py; here, that every worker serves it.
    assert ("dtn_notification_outbox_depth", ()) in final


def _json_lines(path) -> list[dict]:
    lines = path.read_text().splitlines()
    assert lines, f"{path} is empty"
    parsed = []
    for number, line in enumerate(lines, 1):
        try:
            parsed.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"{path.name} line {number} is not JSON: {line!r}") from None
        assert isinstance(parsed[-1], dict) and {"time", "level", "logger", "message"} <= set(parsed[-1])
    return parsed


def test_every_log_line_of_the_run_is_json_with_the_transfer_and_container_ids(run):
    transfer_id, sender_id = run["transfer_id"], run["sender"]["container_id"]
    receiver_id = run["receiver"]["container_id"]
    portal_lines = _json_lines(run["portal"].log_path)
    # One line per event of the transfer, with its IDs; the same events as the API's log.
    event_lines = [line for line in portal_lines if line.get("event")]
    assert event_lines and all(line["transfer_id"] == transfer_id and line["container_id"] == sender_id
                               and line["receiver_id"] == receiver_id for line in event_lines)
    api_events = run["alice"].events(transfer_id)
    assert sorted(line["event"] for line in event_lines) == sorted(event["kind"] for event in api_events)
    assert any(line["logger"].startswith(("gunicorn", "uvicorn")) for line in portal_lines), sorted({line["logger"] for line in portal_lines})

    sender_agent, receiver_agent = run["agents"][1], run["agents"][0]
    sender_lines = _json_lines(sender_agent.log_path)
    assert all("container_id" in line and "transfer_id" in line for line in sender_lines)
    start = next(i for i, line in enumerate(sender_lines) if line["message"].startswith("running command"))
    end = next(i for i, line in enumerate(sender_lines) if re.match(r"command \S+ succeeded", line["message"]))
    during = sender_lines[start:end + 1]
    assert len(during) >= 2
    assert all(line["transfer_id"] == transfer_id and line["container_id"] == sender_id for line in during), during
    # Once the portal named the container, every line carries it.
    named = next(i for i, line in enumerate(sender_lines) if line["container_id"])
    assert all(line["container_id"] == sender_id for line in sender_lines[named:])
    receiver_lines = _json_lines(receiver_agent.log_path)
    assert any(line["container_id"] == receiver_id for line in receiver_lines), [(line["container_id"], line["message"][:80]) for line in receiver_lines]
