"""`make bench-scale`: a million small files in one transfer (issue 22).

On this host's loopback, in one run:

- the tree: N files (default 1,000,000; `--files N`, `--quick` 20,000) of 0–1024 bytes, sizes from a
  seeded RNG, 1,000 files a folder (bench/scale_tree.py); the time to write it is reported.
- the product, as `make run` sets it up: the portal (gunicorn with the box's config, its SQLite database
  unless DTN_TEST_SERVER_DATABASE_URL names a PostgreSQL one), Bob's receiver agent serving his grant to
  Alice over TLS, Alice's sender agent driving its own `rclone rcd` (the harness's PortalServer, Agent and
  Person: tests/harness); one transfer of the whole tree through the portal's API, verification on. Timed
  from the record's `created_at` to its `completed_at`; every file must be verified and land.
  While it runs: every process's peak RSS (VmHWM/VmRSS of each process tree in /proc, every second: the
  sender agent, its rcd, the receiver agent, its serve s3, each portal worker), the time of the transfer's
  API answer (GET /api/v1/transfers/{id}) and of its CSV manifest (GET …/manifest.csv, read to the last
  byte) every ~30 s, and once more after it ended; the portal database's growth.
- then rclone: `rclone copy --transfers 64` of the same tree to a plain `rclone serve s3` (TLS, as the
  receiver's) on this host, timed from its start to its exit; its peak RSS (wait4) and its server's.
- every tree (sent, received by the product, received by rclone) removed at the end.

The run's figures land in bench/results/scale.json for 1,000,000 files, scale-<N>.json otherwise
(`--name`). Method and figures: docs/performance.md, "A million files (issue 22)".

    scale_tree.py    the tree: written, counted, removed
    scale_watch.py   processes' memory, the database's size, the API and CSV timed
    scale_report.py  the goals and the tables"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from agent.tls import ensure_certificate
from bench import report
from bench.contenders import FINISHED, _wait4, parse_time
from bench.scale_report import goals_for, growth, print_tables
from bench.scale_tree import count_tree, make_tree, remove_tree
from bench.scale_watch import ProcessWatch, Probe, database_bytes
from tests.harness import LOCAL, RCLONE, Agent, Person, PortalServer, S3Server, wait_for

FULL_FILES = 1_000_000
QUICK_FILES = 20_000
RCLONE_TRANSFERS = 64


class Product:
    """The product on this host as `make run` starts it (portal/box/story.py: heartbeats every 3 s, Bob's
    receiver serving TLS on the loopback), each process the harness's, at the product's defaults otherwise
    (the agents' progress reports every 1 s, not the tests' 0.5 s)."""

    def __init__(self, scratch: Path, ready_seconds: float = 90):
        self.scratch = scratch
        self.logs = self.dir("logs")
        self.send_dir = self.dir("send")
        self.receive_dir = self.dir("received")
        self.agents: list[Agent] = []
        self.portal = PortalServer(self.dir("portal"), DTN_HEARTBEAT_SECONDS="3").start(timeout=60)
        self.database_url = self.portal.env["DATABASE_URL"]
        self.alice = Person(self.portal.url, "alice-scale")
        self.bob = Person(self.portal.url, "bob-scale")
        self.receiver = self.bob.register("bob-rx", role="receiver")
        self.receiver_agent = self._agent(self.receiver["agent_token"], None, "bob-rx-state",
                                          DTN_RECEIVE_DIR=str(self.receive_dir), DTN_RECEIVER_HOST=LOCAL.address,
                                          DTN_RECEIVER_BIND=LOCAL.address, DTN_RECEIVER_PORT=str(LOCAL.free_port()),
                                          DTN_RECEIVER_TLS="true")
        self.grant = self.bob.call("POST", "/api/v1/grants", 201, json={"grantee": self.alice.username,
                                                                        "receiver": self.receiver["container_id"]})
        self.bucket_dir = self.receive_dir / self.grant["bucket"]
        self.sender = self.alice.register("alice-tx", role="sender")
        self.sender_agent = self._agent(self.sender["agent_token"], self.send_dir, "alice-tx-state")

        def serving():
            self._check_alive()
            row = self.bob.call("GET", f"/api/v1/containers/{self.receiver['container_id']}")
            given = {g["grant_id"]: g for g in self.bob.call("GET", "/api/v1/grants")["given"]}
            return (row["online"] and row["endpoint"].startswith("https://")
                    and given[self.grant["grant_id"]]["served"] == "ok")

        wait_for(serving, ready_seconds, "Bob's receiver to serve the grant over TLS", 0.3)
        wait_for(lambda: self._check_alive() or self.alice.call(
            "GET", f"/api/v1/containers/{self.sender['container_id']}")["online"],
                 ready_seconds, "Alice's sender to come online", 0.3)

    def dir(self, name: str) -> Path:
        path = self.scratch / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _agent(self, token: str, send_dir: Path | None, state: str, **env) -> Agent:
        agent = Agent(self.portal.agent_url, token, send_dir, self.dir(state), self.logs, **env)
        agent.env.pop("DTN_PROGRESS_SECONDS", None)  # the product's default, not the tests' quicker one
        self.agents.append(agent.start())
        return agent

    def _check_alive(self) -> None:
        for agent in self.agents:
            if agent.process.poll() is not None:
                raise RuntimeError(f"{agent.log_path.name} exited {agent.process.returncode}:\n{agent.log()[-3000:]}")

    def roots(self) -> dict[str, int]:
        return {"portal": self.portal.process.pid, "sender": self.sender_agent.pid,
                "receiver": self.receiver_agent.pid}

    def tail_logs(self, lines: int = 30) -> None:
        for agent in self.agents:
            print(f"--- {agent.log_path.name} (last lines) ---\n" + "\n".join(agent.log().splitlines()[-lines:]))
        print("--- portal (last lines) ---\n" + "\n".join(self.portal.log().splitlines()[-lines:]))

    def close(self) -> None:
        for agent in reversed(self.agents):
            agent.stop()
        self.portal.close()


class PlainS3(S3Server):
    """`rclone serve s3` with TLS on the loopback, as bench/datapath.py's in the bed: rclone copy's
    destination."""

    bucket = "bench"

    def __init__(self, scratch: Path, logs: Path):
        tls = ensure_certificate(scratch / "rclone-rx-tls", [LOCAL.address])
        super().__init__(scratch / "rclone-rx", "AKBENCH" + secrets.token_hex(6).upper(), secrets.token_urlsafe(30),
                         cert=tls.cert_path, key=tls.key_path, log_dir=logs, dir_cache="5s")
        self.make_bucket(self.bucket)  # before start: serve s3 caches the tree
        self.start()

    def client_env(self) -> dict:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root.parent),
                "RCLONE_S3_PROVIDER": "Other", "RCLONE_S3_ENDPOINT": self.endpoint,
                "RCLONE_S3_ACCESS_KEY_ID": self.access_key, "RCLONE_S3_SECRET_ACCESS_KEY": self.secret_key,
                "RCLONE_S3_NO_CHECK_BUCKET": "true", "RCLONE_CA_CERT": str(self.cert)}


# --- the two contenders -------------------------------------------------------------------------------------


def run_product(product: Product, tree, timeout: float, probe_every: float) -> dict:
    out: dict = {"contender": "product", "ok": False, "error": ""}
    db_before = database_bytes(product.database_url)
    watch = ProcessWatch(product.roots()).start()
    prefix = f"scale-{secrets.token_hex(3)}"
    started = time.monotonic()
    tid = product.alice.call("POST", "/api/v1/transfers", 201, json={
        "sender": product.sender["container_id"], "receiver": product.receiver["container_id"],
        "sources": [tree.root.name], "prefix": prefix, "label": f"bench-scale {tree.files:,} files",
        "verify_checksums": True})["transfer_id"]
    probe = Probe(product.portal.url, product.alice.session.headers["Authorization"], tid, probe_every,
                  product.database_url).start()
    print(f"  transfer {tid} created; the API and the CSV manifest timed every ~{probe_every:g} s", flush=True)
    last_print = [0.0]
    timeline: list[dict] = []  # every ~5 s: files so far and each process's RSS then (memory per file)

    def finished():
        status = product.alice.call("GET", f"/api/v1/transfers/{tid}/status")
        now = time.monotonic() - started
        if not timeline or now - timeline[-1]["at_s"] >= 5:
            files = status.get("files") or {}
            timeline.append({"at_s": round(now, 1), "state": status["state"],
                             "transferred": files.get("transferred"), "verified": files.get("verified"),
                             "rss_bytes": watch.current(), "hwm_bytes": watch.current("now_hwm")})
        if now - last_print[0] >= 30:
            last_print[0] = now
            files = status.get("files") or {}
            print(f"    {now:6.0f} s  {status['state']:10} files transferred {files.get('transferred', 0):>9,}"
                  f"  verified {files.get('verified', 0):>9,} of {files.get('total', 0):,}", flush=True)
        return status if status["state"] in FINISHED else None

    try:
        wait_for(finished, timeout, f"the transfer of {tree.files:,} files", 1.0)
    except AssertionError as exc:
        out["error"] = str(exc)
        product.alice.call("POST", f"/api/v1/transfers/{tid}/stop", (200, 409))
    wall = time.monotonic() - started
    watch.sample()
    final = product.alice.call("GET", f"/api/v1/transfers/{tid}/status")
    timeline.append({"at_s": round(wall, 1), "state": final["state"],
                     "transferred": final["files"].get("transferred"), "verified": final["files"].get("verified"),
                     "rss_bytes": watch.current(), "hwm_bytes": watch.current("now_hwm")})
    probe.stop()
    after = probe.once("after")
    probe.samples.append(after)
    watch.stop()
    db_after = database_bytes(product.database_url)
    record = product.alice.call("GET", f"/api/v1/transfers/{tid}")
    try:
        events = product.alice.events(tid)
    except AssertionError as exc:
        events = [{"kind": "error", "message": f"events unreadable: {exc}"[:300]}]
    t0 = time.monotonic()
    landed_files, landed_bytes = count_tree(product.bucket_dir / prefix)
    count_s = time.monotonic() - t0
    files = record["files"]
    out.update({
        "transfer_id": tid, "state": record["state"], "wall_s": round(wall, 1),
        "files": files, "bytes": record["bytes"], "landed": {"files": landed_files, "bytes": landed_bytes,
                                                             "count_seconds": round(count_s, 1)},
        "fatal_error": record.get("fatal_error"),
        "processes": watch.by_label(), "portal_workers": watch.workers(), "rss_samples": watch.samples,
        "database": {"url_kind": product.database_url.split(":", 1)[0], "bytes_before": db_before,
                     "bytes_after": db_after, "growth_bytes": (db_after - db_before) if None not in (db_after, db_before)
                     else None},
        "probes": probe.samples,
        "timeline": timeline,
        "events": [{"kind": e["kind"], "message": e["message"][:300]} for e in events
                   if e["kind"] not in ("progress",)][:60],
        "event_count": len(events),
        "sender_state_dir": dict(zip(("files", "bytes"), count_tree(product.sender_agent.state_dir))),
        "receiver_state_dir": dict(zip(("files", "bytes"), count_tree(product.receiver_agent.state_dir))),
        "attempts": len(record.get("commands") or []),
    })
    if record.get("created_at") and record.get("completed_at"):
        out["seconds"] = round(parse_time(record["completed_at"]) - parse_time(record["created_at"]), 1)
    if record.get("started_at") and record.get("completed_at"):
        out["seconds_from_start"] = round(parse_time(record["completed_at"]) - parse_time(record["started_at"]), 1)
    if not out["error"]:
        if record["state"] != "succeeded":
            out["error"] = f"state {record['state']}: {record.get('fatal_error')}"
        elif files["verified"] != tree.files or (landed_files, landed_bytes) != (tree.files, tree.bytes):
            out["error"] = (f"{files['verified']:,} verified; landed {landed_files:,} files / {landed_bytes:,} bytes;"
                            f" expected {tree.files:,} / {tree.bytes:,}")
        else:
            out["ok"] = True
    if out.get("seconds"):
        out["files_per_s"] = round(tree.files / out["seconds"], 1)
    out["remove_received_s"] = round(remove_tree(product.bucket_dir / prefix), 1)
    return out


def run_rclone(scratch: Path, logs: Path, tree, timeout: float) -> dict:
    out: dict = {"contender": "rclone", "ok": False, "error": "", "transfers": RCLONE_TRANSFERS}
    server = PlainS3(scratch, logs)
    prefix = f"scale-{secrets.token_hex(3)}"
    argv = [str(RCLONE), "copy", str(tree.root), f":s3:{server.bucket}/{prefix}", "--config", os.devnull,
            "--transfers", str(RCLONE_TRANSFERS), "--stats", "30s", "--use-json-log", "--stats-log-level", "NOTICE"]
    out["argv"] = " ".join(argv[1:]).replace(str(tree.root), "<tree>")
    errors: list[str] = []
    last_stats: dict = {}
    try:
        started = time.monotonic()
        proc = subprocess.Popen(argv, env=server.client_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        watch = ProcessWatch({"rclone copy": proc.pid, "rclone serve s3": server.process.pid}).start()

        def read():
            for line in proc.stderr:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if "stats" in entry:
                    last_stats.update(entry["stats"])
                    stats = entry["stats"]
                    print(f"    {time.monotonic() - started:6.0f} s  rclone: {stats.get('transfers', 0):>9,} files,"
                          f" {stats.get('errors', 0)} errors", flush=True)
                elif entry.get("level") in ("error", "critical") and len(errors) < 5:
                    errors.append(entry.get("msg", "")[:300])

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        status, usage = _wait4(proc, timeout)
        wall = time.monotonic() - started
        watch.stop()
        reader.join(5)
        proc.stderr.close()
    finally:
        server.stop()
    landed_files, landed_bytes = count_tree(server.root / server.bucket / prefix)
    processes = watch.by_label()
    if usage:  # the client's own peak from its rusage: it may end between two samples
        entry = processes.setdefault("rclone copy", {"processes": 1, "pids": [proc.pid]})
        entry["peak_rss_bytes"] = max(entry.get("peak_rss_bytes", 0), usage.ru_maxrss * 1024)
        entry["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 2)
    out.update({"seconds": round(wall, 1), "wall_s": round(wall, 1), "exit": status,
                "landed": {"files": landed_files, "bytes": landed_bytes}, "processes": processes,
                "errors": errors, "stats": {k: last_stats.get(k) for k in ("transfers", "errors", "checks", "bytes")}})
    if status != 0:
        out["error"] = f"rclone exited {status}: {' | '.join(errors)}"
    elif (landed_files, landed_bytes) != (tree.files, tree.bytes):
        out["error"] = f"landed {landed_files:,} files / {landed_bytes:,} bytes; expected {tree.files:,} / {tree.bytes:,}"
    else:
        out["ok"] = True
        out["files_per_s"] = round(tree.files / wall, 1)
    out["remove_received_s"] = round(remove_tree(server.root / server.bucket / prefix), 1)
    return out


# --- the run -------------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, help=f"files in the tree (default {FULL_FILES:,}; --quick {QUICK_FILES:,})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_FILES:,} files: checks the harness in minutes")
    parser.add_argument("--name", help="bench/results/<name>.json (default scale for 1,000,000 files, scale-<N>)")
    parser.add_argument("--contenders", default="product,rclone", help="comma-separated: product, rclone")
    parser.add_argument("--probe-seconds", type=float, default=30, help="the API and CSV timed this often")
    parser.add_argument("--timeout-minutes", type=float, default=45, help="the product's transfer's limit")
    parser.add_argument("--budget-minutes", type=float, default=60,
                        help="the whole run's limit: rclone copy gets what is left of it (at least 5 minutes), less"
                             " 3 minutes for removing the trees")
    parser.add_argument("--seed", type=int, default=22, help="the sizes' RNG seed")
    args = parser.parse_args(argv)
    count = args.files or (QUICK_FILES if args.quick else FULL_FILES)
    name = args.name or ("scale" if count == FULL_FILES else f"scale-{count}")
    contenders = [c for c in args.contenders.split(",") if c]
    if set(contenders) - {"product", "rclone"}:
        parser.error(f"unknown contenders {sorted(set(contenders) - {'product', 'rclone'})}")

    print(f"bench-scale: {count:,} files of 0-1024 bytes, one transfer through the product on the loopback"
          f" (TLS, verify on), then rclone copy --transfers {RCLONE_TRANSFERS}; results: bench/results/{name}.json",
          flush=True)
    machine = report.machine()
    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="dtn-bench-scale-"))
    runs: dict[str, dict] = {}
    cleanup: dict[str, float] = {}
    tree = None
    product = None
    interrupted = []

    def on_term(signum, frame):  # the finally below removes the trees and stops the processes
        interrupted.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        tree = make_tree(scratch / "send" / "scale", count, args.seed)
        print(f"  tree written: {tree.files:,} files, {tree.bytes / 1e6:,.1f} MB in {tree.folders:,} folders,"
              f" {tree.seconds:.1f} s ({tree.files / max(tree.seconds, 1e-9):,.0f} files/s)", flush=True)
        if "product" in contenders:
            t0 = time.monotonic()
            product = Product(scratch)
            print(f"  portal, receiver (TLS) and sender up in {time.monotonic() - t0:.0f} s"
                  f" (database {product.database_url.split(':', 1)[0]})", flush=True)
            runs["product"] = run_product(product, tree, args.timeout_minutes * 60, args.probe_seconds)
            line(runs["product"])
            if not runs["product"]["ok"]:
                product.tail_logs()
            t0 = time.monotonic()
            product.close()
            product = None
            cleanup["product_stop_s"] = round(time.monotonic() - t0, 1)
        if "rclone" in contenders:
            left = started + args.budget_minutes * 60 - 180 - time.monotonic()
            runs["rclone"] = run_rclone(scratch, scratch / "logs", tree, max(300.0, left))
            line(runs["rclone"])
    finally:
        if product is not None:
            product.close()
        cleanup["remove_tree_s"] = round(remove_tree(scratch / "send"), 1)
        cleanup["remove_scratch_s"] = round(remove_tree(scratch), 1)
        print(f"  trees removed ({cleanup['remove_tree_s']:.0f} s for the sent one)", flush=True)
    if interrupted:
        return 1

    if "product" in runs:
        runs["product"]["growth"] = growth(runs["product"], tree.files)
    goals = goals_for(runs, tree)
    result = {
        "mode": "quick" if args.quick else "full",
        "machine": machine,
        "wall_seconds": round(time.monotonic() - started),
        "settings": {"files": count, "seed": args.seed, "budget_minutes": args.budget_minutes,
                     "timeout_minutes": args.timeout_minutes, "tls": True, "verify_checksums": True,
                     "rclone_transfers": RCLONE_TRANSFERS, "probe_seconds": args.probe_seconds,
                     "portal_heartbeat_seconds": 3, "contenders": contenders,
                     "rclone": subprocess.run([str(RCLONE), "version"], capture_output=True, text=True)
                     .stdout.splitlines()[0]},
        "tree": tree.as_dict(),
        "cleanup": cleanup,
        "runs": runs,
        "goals": [g.as_dict() for g in goals],
    }
    path = report.write(name, result)
    print_tables(result, goals)
    print(f"\nresults: {path.relative_to(report.REPO)}; {result['wall_seconds']} s in all")
    return 0


def line(run: dict) -> None:
    if run["ok"]:
        print(f"  {run['contender']}: {run['seconds']:.1f} s, {run['files_per_s']:,.0f} files/s", flush=True)
    else:
        print(f"  {run['contender']}: FAILED {run['error'][:400]}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
