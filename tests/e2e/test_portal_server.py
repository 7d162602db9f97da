"""The portal under the server the box runs (gunicorn + uvicorn workers), with
agents long-polling it over real sockets."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import requests

from tests.harness import PortalServer

pytestmark = pytest.mark.e2e

HOLD_SECONDS = 8
HELD_CLAIMS = 200
CONTAINERS = 50  # four agent instances per container token


@pytest.fixture(scope="module")
def server():
    with PortalServer(DTN_CLAIM_HOLD_SECONDS=str(HOLD_SECONDS)) as portal:
        yield portal


@pytest.fixture(scope="module")
def fast_reaping_server():
    # Leases shorter than a claim's hold: only for the reaper's test.
    with PortalServer(DTN_LEASE_SECONDS="5", DTN_REAPER_SECONDS="1", DTN_MAX_ATTEMPTS="2") as portal:
        yield portal


def signed_up(server):
    """A person with an API token, created through the API."""
    body = {"username": "alice", "email": "alice@example.org", "password": "a long enough passphrase"}
    assert requests.post(f"{server.url}/api/v1/signup", json=body).status_code == 201
    response = requests.post(f"{server.url}/api/v1/auth/token", json={**body, "name": "tests"})
    assert response.status_code == 201
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {response.json()['token']}"
    return session


@pytest.fixture(scope="module")
def person(server):
    return signed_up(server)


def register(server, person, name):
    response = person.post(f"{server.url}/register", json={"name": name, "role": "sender"})
    assert response.status_code == 201, response.text
    return response.json()


def enqueue(server, container_id) -> str:
    """Queue a command from another process, as the send flow's server would."""
    code = ("from portal.transfers.models import Command; "
            f"print(Command.objects.create(container_id='{container_id}', kind='noop').pk)")
    return server.manage("shell", "--verbosity", "0", "-c", code).stdout.strip()


def command(server, person, command_id) -> dict:
    response = person.get(f"{server.url}/api/v1/commands/{command_id}")
    assert response.status_code == 200
    return response.json()


def test_200_held_claims_leave_the_portal_responsive_and_a_new_command_is_claimed_once(server, person):
    containers = [register(server, person, f"box-{i}") for i in range(CONTAINERS)]
    target = containers[7]

    async def scenario():
        limits = httpx.Limits(max_connections=HELD_CLAIMS + 20, max_keepalive_connections=HELD_CLAIMS + 20)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=HOLD_SECONDS + 20) as client:

            async def claim(container, instance):
                started = time.monotonic()
                response = await client.post(
                    "/api/agent/v1/commands/next", json={"instance_id": instance},
                    headers={"Authorization": f"Bearer {container['agent_token']}"})
                return container["container_id"], response, time.monotonic() - started

            claims = [asyncio.create_task(claim(containers[i % CONTAINERS], f"agent-{i}"))
                      for i in range(HELD_CLAIMS)]
            await asyncio.sleep(1.5)
            assert not any(task.done() for task in claims), "claims were answered instead of held"

            # The portal still answers people promptly while 200 claims are held.
            latencies = []
            headers = dict(person.headers)
            for path in ("/healthz", "/api/v1/containers", "/accounts/login/", "/api/v1/me"):
                started = time.monotonic()
                response = await client.get(path, headers=headers)
                latencies.append(time.monotonic() - started)
                assert response.status_code == 200, (path, response.status_code)
            assert max(latencies) < 2.0, latencies  # a physical bound with a wide margin

            queued_at = time.monotonic()
            command_id = await asyncio.to_thread(enqueue, server, target["container_id"])
            enqueued_in = time.monotonic() - queued_at
            results = await asyncio.gather(*claims)
            return command_id, results, enqueued_in

    command_id, results, enqueued_in = asyncio.run(scenario())
    winners = [(cid, r, t) for cid, r, t in results if r.status_code == 201]
    others = [r.status_code for _, r, _ in results if r.status_code != 201]
    assert len(winners) == 1, [(cid, r.json(), t) for cid, r, t in winners]
    assert set(others) == {204}
    container_id, response, held_for = winners[0]
    assert container_id == target["container_id"]
    assert response.json()["command_id"] == command_id
    # Woken by the sweeper of the worker holding it, well before the hold ran out.
    assert held_for < HOLD_SECONDS, held_for
    assert command(server, person, command_id)["state"] == "claimed"


def test_an_idle_agents_held_claim_is_woken_by_a_side_channel_task(server, person):
    box = register(server, person, "box-tasks")
    headers = {"Authorization": f"Bearer {box['agent_token']}"}

    def held_claim():
        started = time.monotonic()
        response = requests.post(f"{server.url}/api/agent/v1/commands/next", headers=headers,
                                  json={"instance_id": "tasks-1", "tasks": True}, timeout=HOLD_SECONDS + 20)
        return response, time.monotonic() - started

    async def scenario():
        claim = asyncio.create_task(asyncio.to_thread(held_claim))
        await asyncio.sleep(1.0)
        assert not claim.done(), "the claim was answered instead of held"
        asked = await asyncio.to_thread(person.post, f"{server.url}/api/v1/containers/{box['container_id']}/tasks",
                                        json={"kind": "list_send_folder", "params": {}})
        assert asked.status_code == 201, asked.text
        return asked.json()["task_id"], await claim

    task_id, (response, held_for) = asyncio.run(scenario())
    assert response.status_code == 200, response.text
    assert [t["task_id"] for t in response.json()["tasks"]] == [task_id]
    # The task reached the one long-poll the idle agent holds, well before its hold ran out.
    assert held_for < HOLD_SECONDS - 2, held_for


def test_an_expired_lease_is_requeued_then_failed_by_the_servers_own_reaper(fast_reaping_server):
    server = fast_reaping_server
    person = signed_up(server)
    container = register(server, person, "reaped")
    command_id = enqueue(server, container["container_id"])
    agent = {"Authorization": f"Bearer {container['agent_token']}"}

    def claim_and_go_silent():
        response = requests.post(f"{server.url}/api/agent/v1/commands/next?wait=0",
                                 json={"instance_id": "silent"}, headers=agent)
        assert response.status_code == 201
        return response.json()

    def wait_for(predicate, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = command(server, person, command_id)
            if predicate(state):
                return state
            time.sleep(0.5)
        raise AssertionError(f"command never reached the expected state: {state}")

    assert claim_and_go_silent()["attempt"] == 1
    requeued = wait_for(lambda c: c["state"] == "queued")
    assert requeued["attempt"] == 1 and requeued["reason"] == ""

    assert claim_and_go_silent()["attempt"] == 2
    failed = wait_for(lambda c: c["state"] == "failed")
    assert failed["reason"] == "lease_expired"
    assert failed["attempt"] == 2
    assert "lease of command" in server.log()


def test_an_oversized_body_is_refused_before_it_is_read(server):
    import socket

    # Declared, not sent: the answer must come before the portal reads (or spools) a byte of it.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /api/v1/signup HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 67108864\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].split()[1] == b"413"
    assert b"larger than" in body
    assert requests.get(f"{server.url}/healthz", timeout=5).status_code == 200
