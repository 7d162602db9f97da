"""Two portal replicas on one PostgreSQL (issue 24): what a community's portal behind a load balancer runs.

Two gunicorn servers (each with two uvicorn workers: four processes) share one database server and the same
secrets, as the compose file's `--scale portal=2` replicas share the portal-state volume. 200 simulated agents
(100 sender containers, two agents each with one token: one agent on each replica) hold long-poll claims;
Alice sends one transfer to each container, alternating the replica she asks. Each command must be claimed by
exactly one of its container's two agents, whichever replica holds it, within 2 s of the portal's answer to
the send (the claim sweepers of every process ask the shared database; a command created on replica A wakes a
claim held on replica B). Each transfer then succeeds and its mail is sent once, though both replicas' outbox
workers poll the same outbox. A person's session and CSRF token from one replica work on the other."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter, defaultdict

import httpx
import psycopg2
import pytest
import requests

from portal.lib.crypto import generate_key
from tests.harness import Person, PortalServer, wait_for
from tests.tools.mail_files import read_mail_dir
from tests.tools.pgcluster import Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

CONTAINERS = 100
HOLD = 20.0  # each claim's wait, seconds
CLAIM_BOUND = 2.0  # seconds from the send's answer to the command in an agent's hands
AGENT_API = "/api/agent/v1"


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    mail = tmp_path_factory.mktemp("replica-mail")
    cluster = Cluster()
    servers = []
    try:
        url = cluster.start()
        connection = psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("CREATE DATABASE dtn")
        connection.close()
        shared = {
            "DATABASE_URL": url,
            # What the replicas' shared portal-state volume gives them in compose: one set of secrets.
            "DTN_SECRET_KEY": secrets.token_urlsafe(50), "DTN_TOKEN_HMAC_KEY": secrets.token_urlsafe(32),
            "DTN_ENCRYPTION_KEYS": generate_key(),
            "DTN_WEB_WORKERS": "2", "DTN_CLAIM_HOLD_SECONDS": str(int(HOLD)), "DTN_HEARTBEAT_SECONDS": "30",
            "DTN_ACCESS_LOG": "true", "DTN_THROTTLE_AGENT": "100000/minute",
            "DTN_EMAIL_BACKEND": "file", "DTN_EMAIL_FILE_PATH": str(mail), "DTN_NOTIFY_POLL_SECONDS": "1",
        }
        for _ in range(2):
            # One after the other: the second's migrate finds nothing to do.
            servers.append(PortalServer(**shared).start())
        yield servers, mail
    finally:
        for server in servers:
            server.close()
        cluster.stop()


class Fleet:
    """The simulated agents: each heartbeats once, then claims (held) until told to stop; a claimed
    command is reported running, then succeeded, as agent/loop/controller.py does."""

    def __init__(self, boxes: list[dict], bases: list[str]):
        self.boxes, self.bases = boxes, bases
        self.claims: dict[str, list[tuple[int, int, float]]] = defaultdict(list)  # command -> (box, replica, t)
        self.parked = 0
        self.finished = 0  # commands reported succeeded
        self.errors: Counter = Counter()
        self.stopping = False

    async def agent(self, client: httpx.AsyncClient, index: int, replica: int) -> None:
        box = self.boxes[index]
        base = self.bases[replica] + AGENT_API
        headers = {"Authorization": f"Bearer {box['agent_token']}"}
        instance = f"replica-test-{index}-{replica}"
        beat = await client.post(f"{base}/heartbeat", headers=headers, json={
            "instance_id": instance, "agent_version": "test", "rclone_version": "v1.75.2",
            "hostname": f"sim-{index}", "disk_free_bytes": 10**12, "health": {}})
        if beat.status_code != 200:
            self.errors[f"heartbeat {beat.status_code}"] += 1
            return
        while not self.stopping:
            self.parked += 1
            try:
                answer = await client.post(f"{base}/commands/next", headers=headers, params={"wait": f"{HOLD:g}"},
                                           json={"instance_id": instance, "tasks": True}, timeout=HOLD + 15)
            except httpx.HTTPError as exc:
                self.errors[type(exc).__name__] += 1
                await asyncio.sleep(0.5)
                continue
            finally:
                self.parked -= 1
            if answer.status_code in (200, 204):
                continue
            if answer.status_code != 201:
                self.errors[f"claim {answer.status_code}"] += 1
                await asyncio.sleep(0.5)
                continue
            command = answer.json()["command_id"]
            self.claims[command].append((index, replica, time.monotonic()))
            url = f"{base}/commands/{command}"
            for state in ("running", "succeeded"):
                report = await client.patch(url, headers=headers, json={
                    "instance_id": instance, "state": state,
                    "progress": {"bytes": 1024 if state == "succeeded" else 0, "total_bytes": 1024,
                                 "files_done": int(state == "succeeded"), "files_total": 1}})
                if report.status_code != 200:
                    self.errors[f"report {report.status_code}: {report.text[:120]}"] += 1
            self.finished += 1


def test_two_replicas_claim_each_command_once_within_two_seconds_and_mail_once(replicas):
    (a, b), mail = replicas
    bases = [a.url, b.url]
    alice = Person(a.url, "alice-replicas")
    boxes = [alice.register(f"sim-{i:03d}", role="sender") for i in range(CONTAINERS)]
    fleet = Fleet(boxes, bases)
    sends: dict[str, tuple[int, float]] = {}  # command -> (box, when the send was answered)
    transfers: dict[str, str] = {}

    async def run():
        limits = httpx.Limits(max_connections=2 * CONTAINERS + 20, max_keepalive_connections=2 * CONTAINERS + 20)
        async with httpx.AsyncClient(limits=limits, timeout=30) as agents, \
                httpx.AsyncClient(timeout=30, headers=alice.session.headers) as person:
            tasks = [asyncio.create_task(fleet.agent(agents, i, replica))
                     for i in range(CONTAINERS) for replica in (0, 1)]
            deadline = time.monotonic() + 60
            while fleet.parked < 2 * CONTAINERS and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert fleet.parked == 2 * CONTAINERS, (fleet.parked, fleet.errors)
            await asyncio.sleep(1.0)  # every claim past its first look at the queue: parked, held
            for i, box in enumerate(boxes):
                answer = await person.post(f"{bases[i % 2]}/api/v1/transfers", json={
                    "sender": box["container_id"], "s3_host": "s3.example.org", "s3_port": 443, "s3_tls": True,
                    "s3_bucket": "replicas", "s3_access_key": "AKIAREPLICAS", "s3_secret_key": "replicas-secret-0123",
                    "sources": ["data/run"], "label": f"replica run {i:03d}"})
                assert answer.status_code == 201, answer.text
                body = answer.json()
                command = body["commands"][-1]["command_id"]
                sends[command] = (i, time.monotonic())
                transfers[body["transfer_id"]] = f"replica run {i:03d}"
            # Every command claimed and reported (on a loaded machine the reports may come well after).
            deadline = time.monotonic() + CLAIM_BOUND + 60
            while fleet.finished < CONTAINERS and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # a second claim of any command would show by now
            fleet.stopping = True
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(run())

    assert not fleet.errors, fleet.errors
    assert set(fleet.claims) == set(sends), f"{len(set(sends) - set(fleet.claims))} commands never claimed"
    twice = {command: got for command, got in fleet.claims.items() if len(got) != 1}
    assert not twice, twice
    latencies, on_other_replica = [], 0
    for command, [(index, replica, when)] in fleet.claims.items():
        sent_index, answered = sends[command]
        assert index == sent_index  # its own container's agent, no other
        latencies.append(when - answered)
        on_other_replica += replica != sent_index % 2
    latencies.sort()
    print(f"\n{CONTAINERS} commands, {2 * CONTAINERS} agents on 2 replicas: claim after the send's answer"
          f" median {latencies[len(latencies) // 2] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms;"
          f" {on_other_replica} claimed through the replica that did not take the send")
    assert latencies[-1] <= CLAIM_BOUND, latencies[-10:]
    # Both replicas handed out commands (each container's two agents race, one on each).
    assert 0 < on_other_replica < CONTAINERS

    # Every transfer succeeded and mailed Alice once, though two replicas' workers share the outbox.
    for transfer_id in transfers:
        assert alice.transfer(transfer_id)["state"] == "succeeded"

    def all_mailed():
        subjects = Counter(m["Subject"] for m in read_mail_dir(mail))
        return subjects if sum(subjects.values()) >= CONTAINERS else None

    subjects = wait_for(all_mailed, 60, "a mail for every transfer", 0.5)
    time.sleep(3)  # a duplicate would come from the other replica's next poll
    subjects = Counter(m["Subject"] for m in read_mail_dir(mail))
    assert subjects == Counter(f"[DTN] {label}: succeeded" for label in transfers.values()), subjects.most_common(3)

    # Both replicas' access logs show their agents: every heartbeat, and the claims that took a command.
    for server in (a, b):
        log = server.log()
        assert log.count(f"POST {AGENT_API}/heartbeat HTTP/1.1\" 200") == CONTAINERS, log[-2000:]
        assert f"POST {AGENT_API}/commands/next?wait=20 HTTP/1.1\" 201" in log, log[-2000:]


def test_a_session_and_its_csrf_token_from_one_replica_work_on_the_other(replicas):
    (a, b), _ = replicas
    Person(a.url, "bob-replicas")  # signed up through the API on replica A
    browser = requests.Session()
    login = browser.get(f"{a.url}/accounts/login/", timeout=30)
    assert login.status_code == 200
    answer = browser.post(f"{b.url}/accounts/login/", timeout=30, allow_redirects=False,
                          data={"username": "bob-replicas", "password": "correct horse battery staple 42",
                                "csrfmiddlewaretoken": browser.cookies["csrftoken"]},
                          headers={"Referer": f"{b.url}/accounts/login/"})
    assert answer.status_code == 302, answer.text[:500]
    # Signed in on B, the session is known to A.
    page = browser.get(f"{a.url}/portal/containers/", timeout=30, allow_redirects=False)
    assert page.status_code == 200 and "bob-replicas" in page.text
