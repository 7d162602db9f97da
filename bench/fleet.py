"""The control-plane benchmark's load: simulated agents (asyncio tasks over aiohttp) behaving
as agent/loop/controller.py does, and a person sending transfers at a steady rate; every
request timed, its status checked against what the protocol allows."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

from agent.loop.controller import FULL_BEAT_EVERY

AGENT_API = "/api/agent/v1"
TASK_HOLD_SECONDS = 30.0
RUN_SECONDS = 3.0  # how long a simulated agent "works" on a command
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
    # Set while it runs a command: its side channel long-polls then (agent/loop/controller.py).
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
    """agent/loop/controller.py's loop: a full heartbeat every FULL_BEAT_EVERY beats (the claims stand for the
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
