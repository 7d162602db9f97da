"""`make bench-portal`: the control plane under many agents.

2,000 simulated agents (asyncio tasks over aiohttp, in this one process) behave
as agent/controller.py does against the portal under its production server
(gunicorn + uvicorn workers) on a throwaway PostgreSQL with PostgreSQL's default
connection limit: each holds a claim (`commands/next?wait=`, taking side-channel
tasks too) until its next beat is due, the claim standing for its heartbeat except
every tenth beat, a full heartbeat; while it runs a command, it long-polls
`tasks/next` instead. Meanwhile a person sends transfers
through `POST /api/v1/transfers` at a steady rate, half to agents that sit in a
held claim (how long until the agent has it: queued → claimed) and half to
agents busy with a command (their next claim finds it waiting: the claim's own
latency). An agent reports `running`, "works" a few seconds, reports `succeeded`.

Then, with the load stopped, database statements per claim are counted with
pg_stat_statements on the server's own role, once with 100 and once with 2,000
agents waiting: a constant cost per claim is the same number both times.

Set-up (user, containers and their tokens) goes through the ORM; every measured
request goes over HTTP to the real server. The method and the figures are in
docs/performance.md; the run's figures land in bench/results/portal.json and the
plot in docs/img/bench-portal.png."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psycopg2
import requests

from agent.loop.controller import FULL_BEAT_EVERY
from bench import report
from tests.tools.pgcluster import Cluster
from tests.tools.portal_server import PortalServer

AGENT_API = "/api/agent/v1"
TASK_HOLD_SECONDS = 30.0
RUN_SECONDS = 3.0  # how long a simulated agent "works" on a command
CALIBRATION_CLAIMS = 100
# PostgreSQL's own default; the portal must fit under it.
MAX_CONNECTIONS = 100
EXPECTED = {"heartbeat": {200}, "claim": {200, 201, 204}, "tasks": {200, 204}, "report": {200}, "send": {201}}


@dataclass
class Sample:
    kind: str
    started: float  # seconds since the run's origin
    seconds: float
    status: int  # 0: no answer (connection error, timeout)


@dataclass
class Agent:
    index: int
    container_id: str
    token: str
    instance_id: str = ""
    holding_until: float = 0.0  # a claim is held until then (run clock), 0 when none
    running: bool = False
    pending: str | None = None  # a command sent to it, not yet claimed
    # Set while it runs a command: its side channel long-polls then (agent/controller.py).
    busy: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Sent:
    agent: Agent
    mode: str  # "idle": it sat in a held claim; "busy": it was running a command
    started: float
    answered: float = 0.0


@dataclass
class Run:
    origin: float = field(default_factory=time.monotonic)
    samples: list = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    unplaced: Counter = field(default_factory=Counter)  # sends skipped: no agent in the wanted state
    error_examples: list = field(default_factory=list)
    sent: dict = field(default_factory=dict)  # command_id -> Sent
    # command_id -> (claim request sent, command in the agent's hands); a claim
    # may beat the send's own reply when the same server process wakes the agent.
    claims: dict = field(default_factory=dict)
    stopping: bool = False

    def now(self) -> float:
        return time.monotonic() - self.origin

    def record(self, kind, started, status, detail=""):
        self.samples.append(Sample(kind, started, self.now() - started, status))
        if status not in EXPECTED[kind]:
            self.errors[f"{kind} {status or detail}"] += 1
            if len(self.error_examples) < 10:
                self.error_examples.append(f"{kind}: {status} {detail}"[:300])


# --- the simulated agent -------------------------------------------------------------------------


async def call(run: Run, session, kind, method, url, *, token, body=None, params=None, timeout=30.0):
    started = run.now()
    try:
        async with session.request(method, url, json=body, params=params,
                                   headers={"Authorization": f"Bearer {token}"},
                                   timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            payload = await response.json() if response.status in (200, 201) else await response.text()
            run.record(kind, started, response.status, "" if response.status < 400 else str(payload)[:200])
            return response.status, payload
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        if run.stopping:
            return 0, None
        run.record(kind, started, 0, f"{type(exc).__name__}: {exc}")
        return 0, None


async def agent_loop(run: Run, session, base, agent: Agent, first_beat_in: float, heartbeat_seconds: float,
                     hold_seconds: float):
    """agent/controller.py's loop: a full heartbeat every FULL_BEAT_EVERY beats (the claims stand for the
    others), else claim (taking tasks too) until the next beat is due; while a command runs, every beat is
    full (not simulated: the command lasts RUN_SECONDS, less than a beat)."""
    await asyncio.sleep(first_beat_in)
    body = {"instance_id": agent.instance_id, "agent_version": "bench", "rclone_version": "v1.75.2",
            "hostname": f"bench-{agent.index}", "disk_free_bytes": 10**12, "health": {"rclone": "ok"}}
    next_beat = 0.0
    left_to_claims = 0
    while not run.stopping:
        if run.now() >= next_beat and left_to_claims:
            # An idle sender's claim is its sign of life: most beats go without a heartbeat request.
            left_to_claims -= 1
            next_beat = run.now() + heartbeat_seconds
        elif run.now() >= next_beat:
            status, reply = await call(run, session, "heartbeat", "POST", f"{base}/heartbeat", token=agent.token,
                                       body=body)
            heartbeat_seconds = reply.get("heartbeat_seconds", heartbeat_seconds) if status == 200 else 5.0
            next_beat = run.now() + heartbeat_seconds
            left_to_claims = FULL_BEAT_EVERY - 1 if status == 200 else 0
        wait = max(0.0, min(hold_seconds, next_beat - run.now()))
        sent_at = run.now()
        agent.holding_until = sent_at + wait
        status, command = await call(run, session, "claim", "POST", f"{base}/commands/next", token=agent.token,
                                     body={"instance_id": agent.instance_id, "tasks": True},
                                     params={"wait": f"{wait:.1f}"}, timeout=wait + 15)
        agent.holding_until = 0.0
        if status != 201:
            if status not in (200, 204):
                await asyncio.sleep(1.0)
            continue
        run.claims[command["command_id"]] = (sent_at, run.now())
        if agent.pending == command["command_id"]:
            agent.pending = None
        agent.running = True
        agent.busy.set()
        try:
            await work(run, session, base, agent, command["command_id"])
        finally:
            agent.running = False
            agent.busy.clear()


async def work(run: Run, session, base, agent: Agent, command_id: str):
    url = f"{base}/commands/{command_id}"
    await call(run, session, "report", "PATCH", url, token=agent.token,
               body={"instance_id": agent.instance_id, "state": "running",
                     "progress": {"bytes": 0, "total_bytes": 1024, "files_done": 0, "files_total": 1}})
    await asyncio.sleep(RUN_SECONDS)
    await call(run, session, "report", "PATCH", url, token=agent.token,
               body={"instance_id": agent.instance_id, "state": "succeeded",
                     "progress": {"bytes": 1024, "total_bytes": 1024, "files_done": 1, "files_total": 1}})


async def tasks_loop(run: Run, session, base, agent: Agent, first_in: float):
    """The agent's side-channel thread: a long-poll held while a command runs (an idle agent's claim takes
    the tasks)."""
    await asyncio.sleep(first_in)
    while not run.stopping:
        await agent.busy.wait()
        status, _ = await call(run, session, "tasks", "POST", f"{base}/tasks/next", token=agent.token,
                               body={"instance_id": agent.instance_id},
                               params={"wait": f"{TASK_HOLD_SECONDS:g}"}, timeout=TASK_HOLD_SECONDS + 15)
        if status not in (200, 204):
            await asyncio.sleep(1.0)


# --- the person sending --------------------------------------------------------------------------


async def producer(run: Run, session, url, person_token, agents, rate: float, until: float):
    """Sends at a steady rate, alternating between an agent in a held claim and a busy one."""
    interval = 1 / rate
    due = run.now()
    n = 0
    in_flight = set()
    while run.now() < until:
        due += interval
        n += 1
        mode = "idle" if n % 2 else "busy"
        if mode == "idle":
            # At least 2 s left of its hold, so the command lands in this claim, not the next.
            pool = [a for a in agents if a.pending is None and not a.running and a.holding_until > run.now() + 2]
        else:
            pool = [a for a in agents if a.pending is None and a.running]
        if pool:
            agent = random.choice(pool)
            agent.pending = "sending"
            task = asyncio.create_task(send(run, session, url, person_token, agent, mode))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        else:
            # The bench's own miss (no agent in that state this instant), not the portal's: counted apart.
            run.unplaced[mode] += 1
        await asyncio.sleep(max(0.0, due - run.now()))
    await asyncio.gather(*in_flight)


async def send(run: Run, session, url, person_token, agent: Agent, mode: str):
    body = {"sender": agent.container_id, "s3_host": "s3.example.org", "s3_port": 443, "s3_tls": True,
            "s3_bucket": "bench", "s3_access_key": "AKIABENCH", "s3_secret_key": "bench-secret-key-0123456789",
            "sources": ["data/run"], "prefix": f"bench/{agent.index}", "label": "bench"}
    sent = Sent(agent, mode, run.now())
    status, transfer = await call(run, session, "send", "POST", url, token=person_token, body=body)
    sent.answered = run.now()
    if status == 201 and transfer.get("commands"):
        command_id = str(transfer["commands"][-1]["command_id"])
        run.sent[command_id] = sent
        agent.pending = None if command_id in run.claims else command_id
    else:
        if status == 201:
            run.record("send", sent.started, -1, "the reply names no queued command")
        agent.pending = None


# --- watching the machine ------------------------------------------------------------------------


def tree_cpu_seconds(root: int) -> float:
    """CPU time of a process and everything under it, including children that
    already exited (a restarted server worker, a closed PostgreSQL backend)."""
    total = 0
    for pid in descendants(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime; and for the root, cutime and cstime of its reaped children.
        total += int(fields[11]) + int(fields[12])
        if pid == root:
            total += int(fields[13]) + int(fields[14])
    return total / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    found, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        try:
            children = [int(c) for c in Path(f"/proc/{parent}/task/{parent}/children").read_text().split()]
        except OSError:
            children = []
        found += children
        frontier += children
    return found


async def watch(run: Run, db, server: PortalServer, postmaster: int, into: dict, window: tuple[float, float]):
    """Every second: the server's connections to PostgreSQL; CPU of server, database and clients in the window."""
    peak = 0
    marks = {}

    def mark(edge, now):
        usage = resource.getrusage(resource.RUSAGE_SELF)
        marks[edge] = (now, tree_cpu_seconds(server.process.pid), tree_cpu_seconds(postmaster),
                       usage.ru_utime + usage.ru_stime)

    while not run.stopping and len(marks) < 2:
        with db.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = 'dtn'")
            peak = max(peak, cursor.fetchone()[0])
        into["peak_server_connections"] = peak
        now = run.now()
        for edge in ("start", "end"):
            if edge not in marks and now >= window[0 if edge == "start" else 1]:
                mark(edge, now)
        await asyncio.sleep(min(1.0, max(0.05, window[1] - run.now())) if "start" in marks else 1.0)
    if "start" in marks and "end" not in marks:
        # The load stopped before this loop's next turn reached the window's end: its end is now.
        mark("end", run.now())
    if len(marks) == 2:
        (t0, s0, p0, c0), (t1, s1, p1, c1) = marks["start"], marks["end"]
        span = t1 - t0
        into["cpu_cores_used"] = {"portal server": (s1 - s0) / span, "postgresql": (p1 - p0) / span,
                                  "simulated agents (this process)": (c1 - c0) / span}


# --- database statements per claim ---------------------------------------------------------------


def statements(db) -> tuple[int, list]:
    with db.cursor() as cursor:
        # What the server sends. PostgreSQL's own foreign-key checks (`… FOR KEY SHARE OF x`)
        # are left out: they run as the tables' owner, so the bench's sends would count.
        cursor.execute("SELECT calls, query FROM pg_stat_statements WHERE userid = 'dtn'::regrole AND toplevel "
                       "AND query NOT LIKE '%FOR KEY SHARE OF x' ORDER BY calls DESC")
        rows = cursor.fetchall()
    return sum(calls for calls, _ in rows), rows


def reset_statements(db):
    with db.cursor() as cursor:
        cursor.execute("SELECT pg_stat_statements_reset()")


async def settle(db, quiet_per_second: float = 20, timeout: float = 20):
    """Until the server's statement count grows no faster than its periodic work, two seconds in a row
    (2,000 claims arriving, each a sign of life and a read, take several seconds to settle)."""
    deadline = time.monotonic() + timeout
    last, _ = statements(db)
    quiet = 0
    while time.monotonic() < deadline and quiet < 2:
        await asyncio.sleep(1.0)
        now, _ = statements(db)
        quiet = quiet + 1 if now - last <= quiet_per_second else 0
        last = now


async def count_per_claim(session, base, db, agents, owner_id, waiting: int) -> dict:
    """Statements the server runs for one claim: `waiting` agents hold a claim,
    CALIBRATION_CLAIMS of them get a command (sent through the ORM on another
    database role, so the sends are not counted), and the server's statements
    in that window, less its periodic ones (sweeper, reaper), are divided by the claims."""
    run = Run()
    held = agents[:waiting]
    claims = {}

    async def hold(agent):
        status, command = await call(run, session, "claim", "POST", f"{base}/commands/next", token=agent.token,
                                     body={"instance_id": agent.instance_id}, params={"wait": "60"}, timeout=75)
        if status == 201:
            claims[agent.container_id] = command

    tasks = [asyncio.create_task(hold(agent)) for agent in held]
    await asyncio.sleep(2)
    await settle(db)
    reset_statements(db)
    await asyncio.sleep(3)
    periodic, periodic_rows = statements(db)
    periodic_rate = periodic / 3
    # Only agents still waiting: one that held a lease from before got its command back at once.
    waiting_now = [agent for agent, task in zip(held, tasks) if not task.done()]
    chosen = waiting_now[-CALIBRATION_CLAIMS:]
    claims.clear()
    reset_statements(db)
    started = time.monotonic()
    await asyncio.to_thread(queue_by_orm, owner_id, [a.container_id for a in chosen])
    while len(claims) < len(chosen) and time.monotonic() - started < 20:
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - started
    total, rows = statements(db)
    run.stopping = True
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    per_claim = (total - periodic_rate * elapsed) / max(len(claims), 1)
    return {"waiting_agents": waiting, "claims": len(claims), "statements": total,
            "periodic_statements_per_second": round(periodic_rate, 1), "window_seconds": round(elapsed, 2),
            "statements_per_claim": round(per_claim, 2),
            "by_statement": [{"calls": calls, "query": " ".join(query.split())[:160]} for calls, query in rows[:20]],
            "periodic_by_statement": [{"calls": calls, "query": " ".join(query.split())[:160]}
                                      for calls, query in periodic_rows[:10]]}


def queue_by_orm(owner_id, container_ids):
    from django.db import connection

    from portal.accounts.models import User
    from portal.transfers import services

    owner = User.objects.get(pk=owner_id)
    for container_id in container_ids:
        services.send(owner, services.SendRequest(
            sender_id=container_id, receiver_id=None,
            s3={"host": "s3.example.org", "port": 443, "tls": True, "bucket": "bench",
                "access_key": "AKIABENCH", "secret_key": "bench-secret-key-0123456789"},
            sources=["data/run"], prefix="calibration", verify_checksums=True, overwrite="update_changed",
            bandwidth_limit="", label="calibration"))
    connection.close()


# --- set-up --------------------------------------------------------------------------------------


def raise_open_files(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))  # root may raise the hard limit
            return wanted
        except (ValueError, OSError):
            wanted = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def start_database(cluster: Cluster) -> tuple[str, str]:
    url = cluster.start(max_connections=str(MAX_CONNECTIONS), shared_preload_libraries="pg_stat_statements",
                        **{"pg_stat_statements.max": "1000"})
    db = psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres")
    db.autocommit = True
    with db.cursor() as cursor:
        cursor.execute("CREATE DATABASE dtn")
    db.close()
    db = psycopg2.connect(url)
    db.autocommit = True
    with db.cursor() as cursor:
        cursor.execute("CREATE EXTENSION pg_stat_statements")
        # The bench's own set-up and sends-by-ORM run as another role, so the
        # server's statements can be told apart in pg_stat_statements.
        cursor.execute("CREATE ROLE bench SUPERUSER LOGIN")
    db.close()
    return url, url.replace("postgres://dtn@", "postgres://bench@")


def set_up_django(state_dir: Path, bench_url: str):
    os.environ.update({"DJANGO_SETTINGS_MODULE": "portal.settings", "DTN_STATE_DIR": str(state_dir),
                       "DATABASE_URL": bench_url, "DTN_LOG_LEVEL": "WARNING"})
    import django

    django.setup()


def create_agents(owner_username: str, count: int) -> tuple[int, list[Agent]]:
    from django.db import transaction

    from portal.accounts.models import User
    from portal.containers.models import Container

    owner = User.objects.get(username=owner_username)
    agents = []
    with transaction.atomic():
        for i in range(count):
            container, token = Container.register(owner, f"bench-{i:04d}", "sender")
            agents.append(Agent(i, str(container.pk), token, instance_id=f"bench-instance-{i}"))
    return owner.pk, agents


def person_token(url: str) -> str:
    body = {"username": "bench", "email": "bench@example.org", "password": "a long enough bench passphrase"}
    response = requests.post(f"{url}/api/v1/signup", json=body, timeout=30)
    response.raise_for_status()
    response = requests.post(f"{url}/api/v1/auth/token", json={**body, "name": "bench"}, timeout=30)
    response.raise_for_status()
    return response.json()["token"]


# --- the run -------------------------------------------------------------------------------------


async def load(args, server: PortalServer, db, agents, person, owner_id) -> dict:
    run = Run()
    base = f"{server.url}{AGENT_API}"
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=None)
    into: dict = {}
    warm = float(args.warmup)
    window = (warm, warm + args.duration)
    async with aiohttp.ClientSession(connector=connector) as session:
        hb = float(args.heartbeat_seconds)
        loops = []
        for agent in agents:
            # A fleet's heartbeats are spread over the interval, not synchronised.
            loops.append(asyncio.create_task(agent_loop(run, session, base, agent, random.uniform(0, hb), hb,
                                                        float(args.hold_seconds))))
            loops.append(asyncio.create_task(tasks_loop(run, session, base, agent, random.uniform(0, hb))))
        postmaster = int((args.cluster.data / "postmaster.pid").read_text().split()[0])
        watcher = asyncio.create_task(watch(run, db, server, postmaster, into, window))
        print(f"  {len(agents):,} agents starting over {hb:.0f} s; sends begin at {warm:.0f} s", flush=True)
        await asyncio.sleep(max(0.0, warm - run.now()))
        print(f"  sending {args.rate:g} transfers/s for {args.duration} s", flush=True)
        await producer(run, session, f"{server.url}/api/v1/transfers", person, agents, args.rate, window[1])
        # Let the last sends be claimed before the load stops.
        deadline = run.now() + args.hold_seconds + RUN_SECONDS + 5
        while run.now() < deadline and any(c not in run.claims for c in run.sent):
            await asyncio.sleep(0.2)
        end = run.now()
        run.stopping = True
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)

        print("  counting database statements per claim (load stopped)", flush=True)
        calibration = []
        for waiting in (CALIBRATION_CLAIMS, len(agents)):
            try:
                calibration.append(await count_per_claim(session, base, db, agents, owner_id, waiting))
            except Exception as exc:  # the load's figures are still worth keeping
                run.errors[f"counting statements failed: {type(exc).__name__}: {exc}"[:200]] += 1
                calibration.append({"waiting_agents": waiting, "statements_per_claim": None})
    return analyse(run, window, end, into, calibration, args)


def analyse(run: Run, window, end, into, calibration, args) -> dict:
    start, stop = window
    in_window = [s for s in run.samples if start <= s.started < stop]
    by_kind = defaultdict(list)
    for sample in in_window:
        by_kind[sample.kind].append(sample)
    claim_latency, queued_to_claimed = [], []
    for command_id, sent in run.sent.items():
        if command_id not in run.claims:
            continue
        claim_sent, in_hand = run.claims[command_id]
        if sent.mode == "idle" and claim_sent < sent.started:
            # Held when the person pressed send: from the send request to the command in the agent's hands.
            queued_to_claimed.append((sent.started, in_hand - sent.started))
        elif claim_sent >= sent.answered:
            # The command was waiting when the claim was sent: the claim's own round trip.
            claim_latency.append((claim_sent, in_hand - claim_sent))
    unclaimed = sum(1 for c in run.sent if c not in run.claims)
    errors = dict(run.errors)
    if unclaimed:
        errors["sent but never claimed"] = unclaimed
    seconds = stop - start
    kinds = {kind: {**report.summary_ms([s.seconds for s in samples]),
                    "per_second": len(samples) / seconds}
             for kind, samples in sorted(by_kind.items())}
    claim = report.summary_ms([d for _, d in claim_latency])
    queued = report.summary_ms([d for _, d in queued_to_claimed])
    per_claim = [c["statements_per_claim"] for c in calibration]
    error_count = sum(errors.values())
    goals = [
        report.Goal("claim latency p99", claim["p99"], 100, "ms"),
        report.Goal("queued → claimed p95", queued["p95"] / 1000, 1, "s"),
        report.Goal("errors", error_count, 0, ""),
    ]
    return {
        "settings": {"agents": args.agents, "duration_seconds": args.duration, "warmup_seconds": args.warmup,
                     "sends_per_second": args.rate, "heartbeat_seconds": args.heartbeat_seconds,
                     "claim_hold_seconds": args.hold_seconds, "task_hold_seconds": TASK_HOLD_SECONDS,
                     "run_seconds_per_command": RUN_SECONDS, "web_workers": args.workers,
                     "db_threads_per_worker": args.db_threads, "max_connections": MAX_CONNECTIONS},
        "claim_latency_ms": claim,
        "queued_to_claimed_ms": queued,
        "requests_per_second": sum(k["per_second"] for k in kinds.values()),
        "requests": kinds,
        "statements_per_claim": per_claim,
        "calibration": calibration,
        "errors": errors,
        "error_examples": run.error_examples,
        "sent": len(run.sent),
        "sends_not_placed": dict(run.unplaced),
        "unclaimed": unclaimed,
        "peak_server_connections": into.get("peak_server_connections"),
        "cpu_cores_used": into.get("cpu_cores_used", {}),
        # Requests ended per second over the same window, so this is the server's cost of one request.
        "server_cpu_ms_per_request": _cpu_per_request(into, sum(k["per_second"] for k in kinds.values())),
        "goals": [g.as_dict() for g in goals],
        "series": {
            "claim_latency": [(round(t - start, 2), round(d * 1000, 2)) for t, d in claim_latency],
            "queued_to_claimed": [(round(t - start, 2), round(d * 1000, 2)) for t, d in queued_to_claimed],
            "requests": _per_second(in_window, start, stop),
        },
        "_goals": goals,
    }


def _cpu_per_request(into: dict, per_second: float) -> float | None:
    cores = into.get("cpu_cores_used", {}).get("portal server")
    return round(cores / per_second * 1000, 2) if cores is not None and per_second else None


def _per_second(samples, start, stop) -> list:
    counts = Counter(int(s.started - start + s.seconds) for s in samples)
    return [counts.get(second, 0) for second in range(int(stop - start))]


def print_result(result: dict):
    print()
    rows = [["claim (command waiting)", *_row(result["claim_latency_ms"]), "—"],
            ["queued → claimed (held claim)", *_row(result["queued_to_claimed_ms"]), "—"]]
    for kind, figures in result["requests"].items():
        rows.append([f"{kind} request", *_row(figures), figures["per_second"]])
    print(report.table(["what", "count", "p50 ms", "p95 ms", "p99 ms", "max ms", "per s"], rows))
    print()
    calibration = result["calibration"]
    facts = [
        ["requests/s (all agents and sends)", result["requests_per_second"]],
        *[[f"statements per claim, {c['waiting_agents']:,} agents waiting", c["statements_per_claim"]]
          for c in calibration],
        ["server's connections to PostgreSQL, peak", result["peak_server_connections"]],
        ["PostgreSQL max_connections", MAX_CONNECTIONS],
        *[[f"CPU cores used: {who}", used] for who, used in result["cpu_cores_used"].items()],
        ["portal server CPU per request, ms", result.get("server_cpu_ms_per_request", "—")],
        ["errors", sum(result["errors"].values())],
        ["sends not placed (no agent idle or busy at that instant; not an error)",
         sum(result.get("sends_not_placed", {}).values())],
    ]
    print(report.table(["figure", "value"], facts))
    if result["errors"]:
        print("errors:", dict(result["errors"]))
        for example in result["error_examples"]:
            print("  ", example)
    print()
    for goal in result.pop("_goals"):
        print(goal.line())


def _row(figures):
    return [figures["count"], figures["p50"], figures["p95"], figures["p99"], figures["max"]]


def plot(result: dict, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (bars, series) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [1, 1.4]})
    kinds = [("claim\n(waiting)", result["claim_latency_ms"]), ("queued →\nclaimed", result["queued_to_claimed_ms"])]
    kinds += [(f"{kind}\nrequest", figures) for kind, figures in result["requests"].items()
              if kind in ("heartbeat", "report", "send")]
    width = 0.26
    for offset, (q, colour) in enumerate((("p50", "#4c72b0"), ("p95", "#dd8452"), ("p99", "#c44e52"))):
        # A figure with no samples (nothing claimed that way) has no bar.
        shown = [(i, f[q]) for i, (_, f) in enumerate(kinds) if f[q] == f[q] and f[q] is not None]
        bars.bar([i + (offset - 1) * width for i, _ in shown], [max(v, 0.1) for _, v in shown], width, label=q,
                 color=colour)
    bars.set_xticks(range(len(kinds)), [name for name, _ in kinds], fontsize=8)
    bars.set_yscale("log")
    bars.set_ylabel("ms (log scale)")
    bars.axhline(100, color="#c44e52", linestyle=":", linewidth=1)
    label = {"ha": "left", "va": "bottom", "fontsize": 7, "bbox": {"facecolor": "white", "edgecolor": "none", "alpha": 0.8}}
    bars.text(-0.45, 105, "claim p99 goal 100 ms", color="#c44e52", **label)
    bars.axhline(1000, color="#dd8452", linestyle=":", linewidth=1)
    bars.text(-0.45, 1050, "queued → claimed p95 goal 1 s", color="#dd8452", **label)
    bars.legend(fontsize=8, loc="lower right")
    bars.set_title(f"Latency percentiles, {result['settings']['agents']:,} agents", fontsize=10)

    for name, colour in (("queued_to_claimed", "#dd8452"), ("claim_latency", "#4c72b0")):
        points = [(t, d) for t, d in result["series"][name] if d > 0]
        series.scatter([t for t, _ in points], [d for _, d in points], s=4, color=colour, alpha=0.6,
                       label="queued → claimed" if name == "queued_to_claimed" else "claim (command waiting)")
    if any(result["series"][name] for name in ("queued_to_claimed", "claim_latency")):
        series.set_yscale("log")
    else:
        series.text(0.5, 0.5, "no command was claimed in time", transform=series.transAxes, ha="center")
    series.set_xlabel("seconds into the measured window")
    series.set_ylabel("ms (log scale)")
    rate = series.twinx()
    counts = result["series"]["requests"]
    rate.plot(range(len(counts)), counts, color="#55a868", linewidth=0.8, label="requests/s")
    rate.set_ylabel("requests/s ended (answered or failed)", color="#55a868")
    rate.set_ylim(0, max(counts or [1]) * 1.6)
    handles = series.get_legend_handles_labels()[0] + rate.get_legend_handles_labels()[0]
    series.legend(handles=handles, fontsize=8, loc="upper left", markerscale=3)
    series.set_title("Each claim over the run, and the request rate", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.portal", description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=2000)
    parser.add_argument("--duration", type=int, default=150, help="seconds of steady sends measured")
    parser.add_argument("--warmup", type=int, default=25, help="seconds for the agents to come up first")
    parser.add_argument("--rate", type=float, default=10, help="transfers sent per second")
    parser.add_argument("--heartbeat-seconds", type=int, default=30)
    parser.add_argument("--hold-seconds", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (DTN_WEB_WORKERS)")
    parser.add_argument("--db-threads", type=int, default=8, help="DTN_DB_THREADS")
    parser.add_argument("--name", default="portal", help="bench/results/<name>.json")
    parser.add_argument("--plot", type=Path, default=report.FIGURES / "bench-portal.png")
    args = parser.parse_args(argv)

    limit = raise_open_files(4 * args.agents + 1024)
    print(f"bench-portal: {args.agents:,} agents, {args.rate:g} sends/s for {args.duration} s; open files {limit:,}",
          flush=True)
    machine = report.machine()
    cluster = Cluster()
    state_dir = Path(tempfile.mkdtemp(prefix="dtn-bench-portal-"))
    server = None
    started = time.monotonic()
    try:
        server_url, bench_url = start_database(cluster)
        server = PortalServer(state_dir, DATABASE_URL=server_url, DTN_WEB_WORKERS=str(args.workers),
                              DTN_DB_THREADS=str(args.db_threads),
                              DTN_HEARTBEAT_SECONDS=str(args.heartbeat_seconds),
                              DTN_CLAIM_HOLD_SECONDS=str(args.hold_seconds))
        server.start(timeout=60)
        person = person_token(server.url)
        set_up_django(state_dir, bench_url)
        owner_id, agents = create_agents("bench", args.agents)
        print(f"  portal at {server.url} on PostgreSQL (max_connections {MAX_CONNECTIONS}); "
              f"{len(agents):,} containers registered", flush=True)
        db = psycopg2.connect(bench_url)
        db.autocommit = True
        with db.cursor() as cursor:
            cursor.execute("SHOW server_version")
            machine["postgresql"] = cursor.fetchone()[0]
        args.cluster = cluster
        result = asyncio.run(load(args, server, db, agents, person, owner_id))
        db.close()
        server_log = server.log()
        failures = server_log.count("Traceback")
        if failures:
            result["errors"]["server tracebacks"] = failures
            result["_goals"][-1].value += failures
            result["goals"][-1] = result["_goals"][-1].as_dict()
    finally:
        if server is not None:
            server.stop()
        cluster.stop()
        shutil.rmtree(state_dir, ignore_errors=True)
    result = {"machine": machine, "wall_seconds": round(time.monotonic() - started), **result}
    goals = result["_goals"]
    path = report.write(args.name, {k: v for k, v in result.items() if k != "_goals"})
    print_result(result)
    try:
        plot(result, args.plot)
    except Exception as exc:  # a run with nothing to plot still printed its table
        print(f"no plot: {type(exc).__name__}: {exc}")
    print(f"\nresults: {path.relative_to(report.REPO)}; plot: {args.plot}; {result['wall_seconds']} s in all")
    return 0 if goals is not None else 1


if __name__ == "__main__":
    sys.exit(main())
