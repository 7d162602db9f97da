"""`make bench`: the data path against rclone and against the link's limit (issue 9).

On the test bed (tests/netbed: three namespaces, a packet-level WAN forwarder), in one run:

- links: 200 Mbit/s with a small round trip (2 ms) and no loss; 200 Mbit/s with 50 ms round trip and 0.5%
  loss each way; both with cubic on every host; then the lossy link once more with the sender's namespace
  tuned exactly as a compose site's tcp-tune tunes it (`python -m agent.tcptune --apply`: BBR on its routes,
  64 MiB buffer limits; the receiver stays on cubic defaults), the product only (issue 28:
  what the network check's advice buys).
- the link rate: iperf3 goodput (1 and 8 streams, the first 2 s left out) on that link, in the same run.
- contenders, each sending the same dataset to an S3 server with TLS in the receiver's namespace:
  * product: a transfer created through the portal's API (portal in its namespace, Bob's receiver agent
    serving his grant with TLS, Alice's sender agent driving its own `rclone rcd`; the product's defaults:
    network check, tuning and segments on). Timed from the transfer's creation to its verified success
    (`created_at` → `completed_at` of the record); time to first byte from its throughput series.
  * rclone defaults: `rclone copy SRC :s3:bucket/prefix` in the sender's namespace, nothing tuned, to a plain
    `rclone serve s3` with TLS in the receiver's namespace. The only options given are the endpoint and keys
    (environment), the receiver's certificate (`RCLONE_CA_CERT`), `no_check_bucket` (without it a file over
    256 MiB fails with CreateBucket 409 on `serve s3`; the product sets it too) and `--stats 1s` JSON logs.
  * rclone tuned: the best point of a fixed grid found by a short pass per case (each point runs for a few
    seconds on the real dataset, ranked by bytes that crossed the WAN), then measured like the others.
    Single file: upload concurrency (and multi-thread streams) in {4, 16, 64} × chunk size in {5M, 64M};
    many files: transfers in {4, 16, 64, 128} with checkers 32; the mixed tree: the best single-file point
    combined with the best transfers of each many-files case, the better of those.
- runs: up to 3 per case (1 for rclone's defaults on the lossy link, the slowest), median reported, done
  round by round (every case once, then again, ...) within a time budget (60 minutes in all by default):
  a repeat whose last time would not fit is skipped and listed, so the run ends in time whatever the link.
- resources: CPU seconds and peak RSS of the sender's agent and of its `rclone rcd`, separately, from
  /proc (utime+stime before and after; VmHWM after resetting it through clear_refs), and of `rclone copy`
  from its rusage (wait4).

The run's figures land in bench/results/datapath.json (datapath-quick.json for --quick) and the plot in
docs/img/bench-datapath.png (bench-datapath-quick.png). Method and figures: docs/performance.md.

    datasets.py         the datasets
    contenders.py       the product, rclone copy (defaults, tuned, the grid's short passes), iperf3
    datapath_report.py  the summary, goals, tables and plot"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agent.tls import ensure_certificate
from bench import report
from bench.contenders import Run, find_best, iperf3, run_product, run_rclone
from bench.datapath_report import goals_for, plot, print_tables, summarise
from bench.datasets import DATASETS, Dataset, make_datasets
from tests.harness import RCLONE, InBed, MiB, ProductInBed, S3Server

GiB = 1024 * MiB

LINKS = {
    "clean": {"rate_mbit": 200, "rtt_ms": 2, "loss_pct": 0, "cc": "cubic"},
    "lossy": {"rate_mbit": 200, "rtt_ms": 50, "loss_pct": 0.5, "cc": "cubic"},
    "lossy-tuned": {"rate_mbit": 200, "rtt_ms": 50, "loss_pct": 0.5, "cc": "cubic", "tuned": True},
}

# Dataset sizes per link: (single file bytes, 1 MiB files, 64 KiB files, mixed tree bytes). The lossy link gets
# smaller ones so that rclone's defaults (a few Mbit/s per TCP stream under 0.5% loss) finish in minutes.
SIZES = {
    "full": {"clean": (1 * GiB, 1000, 10_000, 500 * MiB), "lossy": (256 * MiB, 256, 2_000, 150 * MiB)},
    "quick": {"clean": (96 * MiB, 64, 400, 48 * MiB), "lossy": (12 * MiB, 8, 100, 8 * MiB)},
}
GRID = {
    "full": {"single": [(c, k) for c in (4, 16, 64) for k in ("5M", "64M")], "files": [4, 16, 64, 128]},
    "quick": {"single": [(4, "5M"), (16, "64M")], "files": [4, 64]},
}
CONTENDERS = ("product", "rclone-defaults", "rclone-tuned")
BBR_QUICK_DATASETS = ("single", "files64k")


# --- the world: bed, portal, receiver, sender, and a plain rclone S3 server -------------------------------------


class World(ProductInBed):
    """The product in the bed at its defaults (the portal's own heartbeat, the agents' 1 s progress reports),
    and a plain rclone S3 server beside it."""

    def __init__(self, bed, scratch: Path, agent_env: dict | None = None):
        super().__init__(bed, scratch, suffix="bench", portal_defaults=("DTN_HEARTBEAT_SECONDS",),
                         agent_env={"DTN_PROGRESS_SECONDS": "1", **(agent_env or {})}, ready_seconds=90)
        self.bucket_dir = self.receive_dir / self.grant["bucket"]
        self.s3 = PlainS3(self)

    def close(self) -> None:
        self.s3.stop()
        super().close()


class PlainS3(S3Server):
    """`rclone serve s3` with TLS in the receiver's namespace, the flags the receiver agent uses; rclone copy's
    destination."""

    bucket = "bench"

    def __init__(self, world: World):
        self.tls = ensure_certificate(world.dir("rclone-rx-tls"), [world.wan])
        super().__init__(world.dir("rclone-rx"), "AKBENCH" + secrets.token_hex(6).upper(), secrets.token_urlsafe(30),
                         cert=self.tls.cert_path, key=self.tls.key_path, log_dir=world.logs,
                         place=InBed(world.bed, "receiver"), dir_cache="5s")
        self.make_bucket(self.bucket)  # before start: serve s3 caches the tree
        self.start()

    def client_env(self) -> dict:
        """rclone copy's settings for this server, in its environment."""
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root.parent),
                "RCLONE_S3_PROVIDER": "Other", "RCLONE_S3_ENDPOINT": self.endpoint,
                "RCLONE_S3_ACCESS_KEY_ID": self.access_key, "RCLONE_S3_SECRET_ACCESS_KEY": self.secret_key,
                "RCLONE_S3_NO_CHECK_BUCKET": "true", "RCLONE_CA_CERT": str(self.cert)}


# The sender's buffer limits before tcp_tuned() raised them, to put back when the tuned link is left.
_untuned: dict[str, str] = {}


def tcp_tuned(bed, on: bool) -> None:
    """The sender's namespace tuned by tcp-tune as a compose site runs it, or back to the bed's defaults."""
    saved = _untuned
    if on and not saved:
        saved.update({name: bed.read_sysctl("sender", f"net/ipv4/{name}") for name in ("tcp_rmem", "tcp_wmem")})
        said = bed.run_python("sender", ["-m", "agent.tcptune", "--apply"], text=True, timeout=60).stdout
        print("  " + said.strip().replace("\n", "\n  "), flush=True)
    elif not on and saved:
        # Routes naming cubic, as the namespace's default does: the tuning's BBR is gone.
        bed.run_python("sender", ["-m", "agent.tcptune", "--apply"], timeout=60,
                       env={**os.environ, "DTN_TCP_CONGESTION_CONTROL": "cubic"})
        for name, value in saved.items():
            bed.run("sender", ["sh", "-c", f"echo {value} > /proc/sys/net/ipv4/{name}"], timeout=10)
        saved.clear()


def plan(mode: str, runs: int, lossy_default_runs: int, bbr_runs: int) -> list[list]:
    rows = []
    for link in ("clean", "lossy"):
        single, n1m, n64k, mixed = SIZES[mode][link]
        rows.append([link, f"{single / MiB:,.0f} MiB", f"{n1m:,} × 1 MiB", f"{n64k:,} × 64 KiB",
                     f"~{mixed / MiB:,.0f} MiB", f"up to {runs}" if link == "clean" else
                     f"up to {runs} ({lossy_default_runs} for rclone defaults); tuned row: product, up to {bbr_runs}"])
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.datapath", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny datasets, 1 run each, a subset of the grid "
                                                             "(~5-8 minutes): checks the harness")
    parser.add_argument("--runs", type=int, help="runs per contender and case (median reported); default 3, quick 1")
    parser.add_argument("--links", default="clean,lossy,lossy-tuned", help="comma-separated subset of the links")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated subset of the datasets"
                        " (a partial run, for development: its goals cover only what ran)")
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated subset of the contenders")
    parser.add_argument("--budget-minutes", type=float, default=60,
                        help="the whole run's limit: repeats that would not fit are skipped (and listed)")
    parser.add_argument("--name", help="bench/results/<name>.json (default datapath or datapath-quick)")
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--agent-env", action="append", default=[], metavar="NAME=VALUE",
                        help="an agent setting other than its default, e.g. DTN_NETCHECK_REUSE_SECONDS=0 for a"
                             " fresh probe before every transfer (repeatable)")
    args = parser.parse_args(argv)
    agent_env = {}
    for item in args.agent_env:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("DTN_"):
            parser.error(f"--agent-env takes DTN_NAME=VALUE, not {item!r}")
        agent_env[name] = value
    mode = "quick" if args.quick else "full"
    runs = args.runs or (1 if args.quick else 3)
    lossy_default_runs = 1  # the slowest contender on the lossy link: one run, as the issue allows
    bbr_runs = 1 if args.quick else 3
    grid_seconds = {"clean": 5 if args.quick else 10, "lossy": 5 if args.quick else 15}
    iperf_seconds = 4 if args.quick else 10
    result_name = args.name or ("datapath-quick" if args.quick else "datapath")
    plot_path = args.plot or report.FIGURES / ("bench-datapath-quick.png" if args.quick else "bench-datapath.png")
    chosen = [link for link in args.links.split(",") if link]
    wanted_datasets = [d for d in args.datasets.split(",") if d]
    wanted_contenders = [c for c in args.contenders.split(",") if c]
    for what, given, known in (("links", chosen, LINKS), ("datasets", wanted_datasets, DATASETS),
                               ("contenders", wanted_contenders, CONTENDERS)):
        unknown = set(given) - set(known)
        if unknown:
            parser.error(f"unknown {what} {sorted(unknown)}; known: {sorted(known)}")

    print(f"bench (data path), {mode} mode: up to {runs} run(s) per case, round by round, within "
          f"{args.budget_minutes:g} minutes in all; the sizes:", flush=True)
    print(report.table(["link", "one file", "1 MiB files", "64 KiB files", "mixed tree", "runs"],
                       plan(mode, runs, lossy_default_runs, bbr_runs)))
    machine = report.machine()
    started = time.monotonic()

    from tests.netbed import Bed

    scratch = Path(tempfile.mkdtemp(prefix="dtn-bench-datapath-"))
    all_runs: list[Run] = []
    skipped: list[dict] = []
    links_out: dict = {}
    grids: dict = {}
    datasets: dict[str, dict[str, Dataset]] = {}
    world = None
    try:
        with Bed(cc="cubic", **{k: v for k, v in LINKS["clean"].items() if k not in ("cc", "tuned")}) as bed:
            world = World(bed, scratch, agent_env)
            # The grid pass of hand-tuned rclone needs every dataset of its link.
            written = DATASETS if "rclone-tuned" in wanted_contenders else wanted_datasets
            for link in sorted({name.split("-")[0] for name in chosen}):
                t0 = time.monotonic()
                datasets[link] = make_datasets(world.send_dir, link, SIZES[mode][link], written)
                print(f"  datasets for the {link} link written in {time.monotonic() - t0:.0f} s: " + ", ".join(
                    f"{d.name} {d.files:,} files {d.bytes / MiB:,.0f} MiB" for d in datasets[link].values()),
                      flush=True)
            print(f"  portal, receiver (TLS) and sender up after {time.monotonic() - started:.0f} s", flush=True)
            # Round by round (every case once, then every case again, ...), so that the budget, if it runs
            # short, costs repeats rather than whole cases; a repeat is skipped when its last time would
            # not fit in what is left.
            deadline = started + args.budget_minutes * 60 - 90  # the tables, the JSON and the plot after
            current = None
            last_seconds: dict = {}
            for index in range(1, max(runs, bbr_runs) + 1):
                for link in chosen:
                    params = LINKS[link]
                    base = link.split("-")[0]
                    contenders = ["product"] if link == "lossy-tuned" else list(CONTENDERS)
                    contenders = [c for c in contenders if c in wanted_contenders]
                    names = BBR_QUICK_DATASETS if (args.quick and link == "lossy-tuned") else DATASETS
                    names = [n for n in names if n in wanted_datasets]
                    for name in names:
                        ds = datasets[base][name]
                        for contender in contenders:
                            wanted = bbr_runs if link == "lossy-tuned" else (
                                lossy_default_runs if (link, contender) == ("lossy", "rclone-defaults") else runs)
                            if index > wanted:
                                continue
                            key = (link, name, contender)
                            if index > 1 and time.monotonic() + last_seconds.get(key, 0) * 1.2 + 20 > deadline:
                                skipped.append({"link": link, "dataset": name, "contender": contender,
                                                "run": index, "why": "the time budget"})
                                print(f"  {link:9} {name:8} {contender:15} run {index}: skipped (time budget)",
                                      flush=True)
                                continue
                            if current != link:
                                current = link
                                bed.link.set(**{k: v for k, v in params.items() if k not in ("cc", "tuned")})
                                bed.set_congestion_control(params["cc"])
                                tcp_tuned(bed, params.get("tuned", False))
                                print(f"\n== {link}: {params}, round {index} ==", flush=True)
                            if link not in links_out:
                                links_out[link] = {**params, "iperf3": iperf3(bed, iperf_seconds)}
                                ip = links_out[link]["iperf3"]
                                print(f"  iperf3: {ip['streams_1_bytes_per_s'] / 1e6:.2f} MB/s (1 stream), "
                                      f"{ip['streams_8_bytes_per_s'] / 1e6:.2f} MB/s (8 streams)", flush=True)
                            if contender == "rclone-tuned" and link not in grids:
                                t0 = time.monotonic()
                                grids[link] = find_best(world, link, datasets[base], GRID[mode], grid_seconds[base])
                                print(f"  grid pass: {time.monotonic() - t0:.0f} s", flush=True)
                            run = Run(link, name, contender, index)
                            t0 = time.monotonic()
                            # Round 1 is never cut short (a case with no run says nothing); repeats stop at the budget.
                            timeout = 1800.0 if index == 1 else max(60.0, min(1800.0, deadline - t0))
                            if contender == "product":
                                run_product(world, ds, run, timeout)
                            elif contender == "rclone-defaults":
                                run_rclone(world, ds, run, {}, timeout)
                            else:
                                run_rclone(world, ds, run, grids[link][name]["best"], timeout)
                            last_seconds[key] = time.monotonic() - t0
                            all_runs.append(run)
                            print(f"  {link:9} {name:8} {contender:15} run {index}: "
                                  + (f"{run.seconds:7.1f} s {run.bytes_per_s / 1e6:7.2f} MB/s "
                                     f"{run.files_per_s:8.1f} files/s, 1st byte {run.ttfb_s:.1f} s"
                                     if run.ok else f"FAILED {run.error[:300]}"), flush=True)
            world.close()
            world = None
    finally:
        if world is not None:
            world.close()
        shutil.rmtree(scratch, ignore_errors=True)

    sizes = {link: {n: {"files": d.files, "bytes": d.bytes} for n, d in ds.items()} for link, ds in datasets.items()}
    summary = summarise(all_runs, links_out, datasets)
    goals = goals_for(summary, all_runs)
    result = {
        "mode": mode,
        "machine": machine,
        "wall_seconds": round(time.monotonic() - started),
        "settings": {"runs": runs, "lossy_rclone_defaults_runs": lossy_default_runs, "bbr_runs": bbr_runs,
                     "grid_seconds": grid_seconds, "iperf3_seconds": iperf_seconds, "grid": GRID[mode],
                     "rclone": subprocess.run([str(RCLONE), "version"], capture_output=True, text=True)
                     .stdout.splitlines()[0], "tls": True, "agent_env": agent_env},
        "links": links_out,
        "datasets": sizes,
        "grid": grids,
        "skipped_for_time": skipped,
        "summary": summary,
        "goals": [g.as_dict() for g in goals],
        "runs": [r.as_dict() for r in all_runs],
    }
    path = report.write(result_name, result)
    print_tables(result, goals)
    try:
        plot(json.loads(path.read_text()), plot_path)
    except Exception as exc:  # the table is printed either way
        print(f"no plot: {type(exc).__name__}: {exc}")
    print(f"\nresults: {path.relative_to(report.REPO)}; plot: {plot_path}; {result['wall_seconds']} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
