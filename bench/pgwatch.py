"""What the control-plane benchmark watches besides the requests: the server's connections to
PostgreSQL and the CPU of server, database and load, and the database statements one
claim costs, counted with pg_stat_statements."""

from __future__ import annotations

import asyncio
import os
import resource
import time
from pathlib import Path

from bench.fleet import Run, call
from tests.harness import PortalServer

CALIBRATION_CLAIMS = 100
# PostgreSQL's own default; the portal must fit under it.
MAX_CONNECTIONS = 100


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
