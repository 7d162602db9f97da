"""`make bench-portal`: the control plane under many agents.

2,000 simulated agents (asyncio tasks over aiohttp, in this one process) behave
as agent/loop/controller.py does against the portal under its production server
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
plot in docs/img/bench-portal.png.

    fleet.py          the simulated agents and the person sending
    pgwatch.py        connections, CPU, and statements per claim
    portal_report.py  the figures, goals, table and plot"""

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
from pathlib import Path

import aiohttp
import psycopg2
import requests

from bench import report
from bench.fleet import AGENT_API, RUN_SECONDS, Agent, Run, agent_loop, producer, tasks_loop
from bench.pgwatch import CALIBRATION_CLAIMS, MAX_CONNECTIONS, count_per_claim, watch
from bench.portal_report import analyse, plot, print_result
from tests.harness import PortalServer
from tests.tools.pgcluster import Cluster

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
            server.close()
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
