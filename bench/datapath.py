"""`make bench`: the data path against rclone and against the link's limit (issue 9).

On the test bed (tests/netbed: three namespaces, a packet-level WAN forwarder), in one run:

- links: 200 Mbit/s with a small round trip (2 ms) and no loss; 200 Mbit/s with 50 ms round trip and 0.5%
  loss each way; both with cubic on every host; then the lossy link once more with BBR (the product only:
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
docs/img/bench-datapath.png (bench-datapath-quick.png). Method and figures: docs/performance.md."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import report
from tests.e2e.procs import write_random
from tests.tools.bedbox import ProductInBed

MiB = 1024 * 1024
GiB = 1024 * MiB
RCLONE = Path(sys.executable).parent / "rclone"
RCLONE_S3_PORT = 9700
FINISHED = ("succeeded", "failed", "canceled")

LINKS = {
    "clean": {"rate_mbit": 200, "rtt_ms": 2, "loss_pct": 0, "cc": "cubic"},
    "lossy": {"rate_mbit": 200, "rtt_ms": 50, "loss_pct": 0.5, "cc": "cubic"},
    "lossy-bbr": {"rate_mbit": 200, "rtt_ms": 50, "loss_pct": 0.5, "cc": "bbr"},
}
DATASETS = ("single", "files1m", "files64k", "mixed")
DATASET_TITLES = {"single": "one large file", "files1m": "1 MiB files", "files64k": "64 KiB files",
                  "mixed": "mixed research tree"}

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


# --- datasets -------------------------------------------------------------------------------------------------


@dataclass
class Dataset:
    link: str  # "clean" or "lossy" (the BBR row uses the lossy link's)
    name: str
    root: Path  # the send dir
    rel: str  # the source, relative to the send dir: a file or a folder
    files: int = 0
    bytes: int = 0

    @property
    def path(self) -> Path:
        return self.root / self.rel


def make_datasets(send_dir: Path, link: str, sizes: tuple, names=DATASETS) -> dict[str, Dataset]:
    """Incompressible bytes (os.urandom), so no layer can cheat by compressing."""
    single, n1m, n64k, mixed = sizes
    made = {}
    if "single" in names:
        ds = made["single"] = Dataset(link, "single", send_dir, f"{link}/single/data.bin")
        write_random(ds.path, single)
    if "files1m" in names:
        ds = made["files1m"] = Dataset(link, "files1m", send_dir, f"{link}/files1m")
        for i in range(n1m):
            write_random(ds.path / f"d{i // 100:02d}" / f"f{i:05d}.bin", MiB)
    if "files64k" in names:
        ds = made["files64k"] = Dataset(link, "files64k", send_dir, f"{link}/files64k")
        for i in range(n64k):
            write_random(ds.path / f"d{i // 500:02d}" / f"f{i:05d}.bin", 64 * 1024)
    if "mixed" in names:
        ds = made["mixed"] = Dataset(link, "mixed", send_dir, f"{link}/mixed")
        mixed_tree(ds.path, mixed, random.Random(f"mixed-{link}"))
    for ds in made.values():
        files = [ds.path] if ds.path.is_file() else [p for p in ds.path.rglob("*") if p.is_file()]
        ds.files, ds.bytes = len(files), sum(p.stat().st_size for p in files)
    return made


def mixed_tree(root: Path, total: int, rng: random.Random) -> None:
    """Shaped like an instrument's output: one raw capture (40% of the bytes), processed 4 MiB chunks (30%),
    quick-look products of 256 KiB-2 MiB (15%), and many small metadata/log files of 1-64 KiB (15%), in a
    nested run/sample layout."""
    write_random(root / "raw" / "run01" / "capture.raw", int(total * 0.40))
    budget = int(total * 0.30)
    index = 0
    while budget > 0:
        size = min(4 * MiB, budget)
        write_random(root / "processed" / f"run01/sample{index % 8:02d}" / f"chunk{index:04d}.nc", size)
        budget -= size
        index += 1
    budget, index = int(total * 0.15), 0
    while budget > 0:
        size = min(rng.randint(256 * 1024, 2 * MiB), budget)
        write_random(root / "quicklook" / f"sample{index % 8:02d}" / f"plot{index:04d}.png", size)
        budget -= size
        index += 1
    budget, index = int(total * 0.15), 0
    while budget > 0:
        size = min(rng.randint(1024, 64 * 1024), budget)
        write_random(root / "meta" / f"sample{index % 16:02d}" / f"shot{index // 16 % 40:02d}" / f"m{index:05d}.json", size)
        budget -= size
        index += 1


def landed(root: Path) -> tuple[int, int]:
    files = [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
    return len(files), sum(p.stat().st_size for p in files)


# --- processes: CPU and peak memory from /proc ----------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | None) -> float | None:
    if not pid:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def peak_rss_bytes(pid: int | None) -> int | None:
    if not pid:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def reset_peak_rss(pid: int | None) -> None:
    """Writing 5 to clear_refs resets VmHWM to the current RSS, so the next reading is this run's peak."""
    if pid:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            pass


def rcd_pid(agent_pid: int) -> int | None:
    """The agent's `rclone rcd` child (the agent restarts it if it dies, so look it up each run)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == agent_pid and b" rcd" in (entry / "cmdline").read_bytes().replace(b"\0", b" "):
                return int(entry.name)
        except (OSError, IndexError, ValueError):
            continue
    return None


def parse_time(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


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


class PlainS3:
    """`rclone serve s3` with TLS in the receiver's namespace, the flags the receiver agent uses; rclone copy's
    destination."""

    def __init__(self, world: World):
        from agent.tls import ensure_certificate
        from tests.e2e.procs import csv_quote

        self.world = world
        self.root = world.dir("rclone-rx")
        self.bucket = "bench"
        self.cert = ensure_certificate(world.dir("rclone-rx-tls"), [world.wan])
        self.access_key, self.secret_key = "AKBENCH" + secrets.token_hex(6).upper(), secrets.token_urlsafe(30)
        self.endpoint = f"https://{world.wan}:{RCLONE_S3_PORT}"
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root),
                    "RCLONE_AUTH_KEY": csv_quote(f"{self.access_key},{self.secret_key}")}
        self.process = None
        self.start()

    def start(self) -> None:
        from tests.e2e.procs import wait_for

        (self.root / self.bucket).mkdir(parents=True, exist_ok=True)  # before start: serve s3 caches the tree
        log = open(self.world.logs / "rclone-serve-s3.log", "ab")
        self.process = self.world.bed.popen(
            "receiver", [str(RCLONE), "serve", "s3", str(self.root), "--addr", f"{self.world.wan}:{RCLONE_S3_PORT}",
                         "--config", os.devnull, "--dir-cache-time", "5s", "--log-level", "NOTICE",
                         "--cert", str(self.cert.cert_path), "--key", str(self.cert.key_path)],
            env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for(lambda: self.world.bed.run("sender", ["bash", "-c", f"exec 3<>/dev/tcp/{self.world.wan}/"
                                                                     f"{RCLONE_S3_PORT}"], check=False).returncode == 0,
                 20, "the plain S3 server to listen", 0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(10)

    def restart(self) -> None:
        """Clean state after a short pass was cut off mid-upload (its unfinished multipart uploads)."""
        self.stop()
        self.start()

    def client_env(self) -> dict:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root.parent),
                "RCLONE_S3_PROVIDER": "Other", "RCLONE_S3_ENDPOINT": self.endpoint,
                "RCLONE_S3_ACCESS_KEY_ID": self.access_key, "RCLONE_S3_SECRET_ACCESS_KEY": self.secret_key,
                "RCLONE_S3_NO_CHECK_BUCKET": "true", "RCLONE_CA_CERT": str(self.cert.cert_path)}


# --- measurements ---------------------------------------------------------------------------------------------


@dataclass
class Run:
    link: str
    dataset: str
    contender: str
    index: int
    ok: bool = False
    error: str = ""
    seconds: float = float("nan")
    bytes: int = 0
    files: int = 0
    ttfb_s: float = float("nan")  # command creation (or process start) to the first sample with bytes moved
    cpu_s: dict = field(default_factory=dict)  # process -> CPU seconds during the run
    peak_rss: dict = field(default_factory=dict)  # process -> bytes
    series: list = field(default_factory=list)  # [seconds since creation/start, bytes/s]
    settings: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)

    @property
    def bytes_per_s(self) -> float:
        return self.bytes / self.seconds if self.ok and self.seconds > 0 else float("nan")

    @property
    def files_per_s(self) -> float:
        return self.files / self.seconds if self.ok and self.seconds > 0 else float("nan")

    def as_dict(self) -> dict:
        return {"link": self.link, "dataset": self.dataset, "contender": self.contender, "run": self.index,
                "ok": self.ok, "error": self.error, "seconds": self.seconds, "bytes": self.bytes, "files": self.files,
                "bytes_per_s": self.bytes_per_s, "files_per_s": self.files_per_s, "ttfb_s": self.ttfb_s,
                "cpu_s": self.cpu_s, "peak_rss_bytes": self.peak_rss, "settings": self.settings,
                "notes": self.notes, "series": self.series}


def iperf3(bed, seconds: int) -> dict:
    """Goodput where the bytes arrive, 1 and 8 streams, the first 2 s (slow start) left out."""
    wan = bed.address("receiver", seen_from="sender")
    out = {}
    for streams in (1, 8):
        server = bed.popen("receiver", ["iperf3", "-s", "-1", "-B", wan, "-p", "5299"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            done = bed.run("sender", ["iperf3", "-c", wan, "-p", "5299", "-t", str(seconds), "-O", "2",
                                      "-P", str(streams), "-J"], check=False, timeout=seconds + 60, text=True)
            result = json.loads(done.stdout or "{}")
            received = result.get("end", {}).get("sum_received", {})
            out[f"streams_{streams}_bytes_per_s"] = received.get("bits_per_second", 0) / 8
            out[f"streams_{streams}_retransmits"] = result.get("end", {}).get("sum_sent", {}).get("retransmits")
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
    out["bytes_per_s"] = max(out["streams_1_bytes_per_s"], out["streams_8_bytes_per_s"])
    return out


def run_product(world: World, ds: Dataset, run: Run, timeout: float) -> Run:
    from tests.e2e.procs import wait_for

    agent_pid = world.sender_agent.pid
    rcd = rcd_pid(agent_pid)
    for pid in (agent_pid, rcd):
        reset_peak_rss(pid)
    cpu0 = {"agent": cpu_seconds(agent_pid), "rcd": cpu_seconds(rcd)}
    prefix = f"p-{ds.link}-{ds.name}-{secrets.token_hex(3)}"
    tid = world.alice.call("POST", "/api/v1/transfers", 201, json={
        "sender": world.sender["container_id"], "receiver": world.receiver["container_id"],
        "sources": [ds.rel], "prefix": prefix, "label": prefix})["transfer_id"]
    peak = {"agent": 0, "rcd": 0}

    def finished():
        # Peak RSS is also read while it runs: the rcd may be restarted by the agent (then a new pid).
        current = rcd_pid(agent_pid)
        for name, pid in (("agent", agent_pid), ("rcd", current)):
            peak[name] = max(peak[name], peak_rss_bytes(pid) or 0)
        record = world.alice.call("GET", f"/api/v1/transfers/{tid}")
        return record if record["state"] in FINISHED else None

    try:
        record = wait_for(finished, timeout, f"the product's transfer of {ds.rel}", 0.25)
    except AssertionError as exc:
        world.alice.call("POST", f"/api/v1/transfers/{tid}/stop", (200, 409))
        run.error = str(exc)
        return run
    rcd_after = rcd_pid(agent_pid)
    run.cpu_s = {"agent": _delta(cpu0["agent"], cpu_seconds(agent_pid)),
                 "rcd": _delta(cpu0["rcd"], cpu_seconds(rcd_after)) if rcd_after == rcd else None}
    for name, pid in (("agent", agent_pid), ("rcd", rcd_after)):
        peak[name] = max(peak[name], peak_rss_bytes(pid) or 0)
    run.peak_rss = dict(peak)
    events = world.alice.events(tid)
    run.notes = {"transfer_id": tid, "state": record["state"],
                 "events": [{"kind": e["kind"], "message": e["message"]} for e in events
                            if e["kind"] in ("network_check", "tuning", "performance", "stall", "recovered",
                                             "retry", "error")][:40],
                 "network_check": {k: (record.get("network_check") or {}).get(k)
                                   for k in ("verdict", "reason", "predicted_seconds", "probe", "rtt_ms")}}
    created, completed = parse_time(record["created_at"]), record.get("completed_at")
    files, size = landed(world.bucket_dir / prefix)
    run.files, run.bytes = record["files"]["total"], record["bytes"]["total"]
    if record["state"] != "succeeded" or not completed:
        run.error = f"state {record['state']}: {record.get('fatal_error')}"
    elif (files, size) != (ds.files, ds.bytes) or record["files"]["verified"] != ds.files:
        run.error = (f"landed {files} files / {size} bytes, {record['files']['verified']} verified; "
                     f"expected {ds.files} / {ds.bytes}")
    else:
        run.ok = True
        run.seconds = parse_time(completed) - created
    origin = parse_time(record["started_at"]) if record.get("started_at") else created
    points = (record.get("throughput") or {}).get("points", [])
    run.series = [[round(origin + t - created, 2), rate] for t, rate in points]
    first = next((t for t, rate in run.series if rate > 0), None)
    run.ttfb_s = first if first is not None else float("nan")
    shutil.rmtree(world.bucket_dir / prefix, ignore_errors=True)
    return run


def _delta(before, after):
    return round(after - before, 2) if before is not None and after is not None else None


def rclone_argv(ds: Dataset, dest: str, settings: dict) -> list[str]:
    argv = [str(RCLONE), "copy", str(ds.path), dest, "--config", os.devnull]
    if "transfers" in settings:
        argv += ["--transfers", str(settings["transfers"]), "--checkers", str(settings.get("checkers", 32))]
    if "upload_concurrency" in settings:
        argv += ["--s3-upload-concurrency", str(settings["upload_concurrency"]),
                 "--multi-thread-streams", str(settings["upload_concurrency"]),
                 "--s3-chunk-size", settings["chunk_size"]]
    return argv


def run_rclone(world: World, ds: Dataset, run: Run, settings: dict, timeout: float) -> Run:
    """`rclone copy` in the sender's namespace; its stats each second on stderr (JSON log lines)."""
    prefix = f"r-{ds.link}-{ds.name}-{secrets.token_hex(3)}"
    dest = f":s3:{world.s3.bucket}/{prefix}"
    argv = rclone_argv(ds, dest, settings) + ["--stats", "1s", "--use-json-log", "--stats-log-level", "NOTICE"]
    run.settings = dict(settings)
    samples: list[tuple[float, int]] = []
    errors: list[str] = []
    started = time.time()
    proc = world.bed.popen("sender", argv, env=world.s3.client_env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)

    def read():
        for line in proc.stderr:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if "stats" in entry:
                samples.append((time.time(), entry["stats"].get("bytes", 0)))
            elif entry.get("level") in ("error", "critical") and len(errors) < 5:
                errors.append(entry.get("msg", "")[:300])

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    status, usage = _wait4(proc, timeout)
    ended = time.time()
    reader.join(5)
    proc.stderr.close()
    if proc in world.bed._procs:
        world.bed._procs.remove(proc)
    run.cpu_s = {"rclone": round(usage.ru_utime + usage.ru_stime, 2)} if usage else {}
    run.peak_rss = {"rclone": usage.ru_maxrss * 1024} if usage else {}
    files, size = landed(world.s3.root / world.s3.bucket / prefix)
    run.files, run.bytes = ds.files, ds.bytes
    if status != 0:
        run.error = f"rclone exited {status}: {' | '.join(errors)}"
    elif (files, size) != (ds.files, ds.bytes):
        run.error = f"landed {files} files / {size} bytes; expected {ds.files} / {ds.bytes}"
    else:
        run.ok = True
        run.seconds = ended - started
    last_t, last_b = started, 0
    for at, sent in samples:
        if at > last_t:
            run.series.append([round(at - started, 2), round((sent - last_b) / (at - last_t), 1)])
        last_t, last_b = at, sent
    first = next((t for t, rate in run.series if rate > 0), None)
    run.ttfb_s = first if first is not None else float("nan")
    run.notes = {"errors": errors}
    shutil.rmtree(world.s3.root / world.s3.bucket / prefix, ignore_errors=True)
    return run


def _wait4(proc, timeout: float):
    """Exit status and rusage (CPU, peak RSS) of the child itself (`ip netns exec` execs rclone in place)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            return f"killed after {timeout:g} s", usage
        time.sleep(0.05)


def short_pass(world: World, ds: Dataset, settings: dict, seconds: float) -> float:
    """Bytes/s across the WAN (the forwarder's count, sender to receiver) while `rclone copy` with these settings
    runs for at most `seconds`; then it is cut off and the server restarted clean."""
    prefix = f"g-{secrets.token_hex(3)}"
    argv = rclone_argv(ds, f":s3:{world.s3.bucket}/{prefix}", settings)
    before = world.bed.link.stats()["a_to_b"]["bytes_out"]
    started = time.monotonic()
    proc = world.bed.popen("sender", argv, env=world.s3.client_env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    while proc.poll() is None and time.monotonic() - started < seconds:
        time.sleep(0.1)
    elapsed = time.monotonic() - started
    after = world.bed.link.stats()["a_to_b"]["bytes_out"]
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        world.s3.restart()
    if proc in world.bed._procs:
        world.bed._procs.remove(proc)
    shutil.rmtree(world.s3.root / world.s3.bucket / prefix, ignore_errors=True)
    return (after - before) / elapsed


def find_best(world: World, link: str, datasets: dict[str, Dataset], grid: dict, seconds: float) -> dict:
    """The hand-tuned settings per dataset: the best grid point by the short pass."""
    found = {}

    def best_of(name, points):
        tried = []
        for settings in points:
            rate = short_pass(world, datasets[name], settings, seconds)
            tried.append({"settings": settings, "bytes_per_s": round(rate, 1)})
            print(f"    grid {link:5} {name:8} {_settings_text(settings):32} {rate / 1e6:7.2f} MB/s on the WAN",
                  flush=True)
        best = max(tried, key=lambda row: row["bytes_per_s"])
        found[name] = {"tried": tried, "best": best["settings"]}
        return best["settings"]

    single = best_of("single", [{"upload_concurrency": c, "chunk_size": k} for c, k in grid["single"]])
    by_files = [best_of(name, [{"transfers": t, "checkers": 32} for t in grid["files"]])
                for name in ("files1m", "files64k")]
    combos = []
    for files in by_files:
        combo = {**files, **single}
        if combo not in combos:
            combos.append(combo)
    best_of("mixed", combos)
    return found


def _settings_text(settings: dict) -> str:
    parts = []
    if "transfers" in settings:
        parts.append(f"transfers {settings['transfers']}")
    if "upload_concurrency" in settings:
        parts.append(f"concurrency {settings['upload_concurrency']} × {settings['chunk_size']}")
    return ", ".join(parts) or "defaults"


# --- the run --------------------------------------------------------------------------------------------------


def median_seconds(runs: list[Run]) -> float | None:
    good = [r.seconds for r in runs if r.ok]
    return statistics.median(good) if good else None


def median_run(runs: list[Run]) -> Run | None:
    """The run closest to the median time: its series, CPU and memory stand for the case."""
    middle = median_seconds(runs)
    good = [r for r in runs if r.ok]
    return min(good, key=lambda r: abs(r.seconds - middle)) if good else None


def summarise(runs: list[Run], links: dict, datasets: dict) -> list[dict]:
    rows = []
    cases = []
    for r in runs:
        if (r.link, r.dataset, r.contender) not in cases:
            cases.append((r.link, r.dataset, r.contender))
    for link, name, contender in cases:
        mine = [r for r in runs if (r.link, r.dataset, r.contender) == (link, name, contender)]
        mid = median_run(mine)
        seconds = median_seconds(mine)
        product = median_seconds([r for r in runs if (r.link, r.dataset, r.contender) == (link, name, "product")])
        rate = links[link]["iperf3"]["bytes_per_s"]
        ds = datasets[link.split("-")[0]][name]
        row = {"link": link, "dataset": name, "contender": contender, "runs": len(mine),
               "failed": sum(not r.ok for r in mine), "errors": [r.error for r in mine if r.error],
               "files": ds.files, "bytes": ds.bytes}
        if mid is not None:
            row.update(seconds=seconds, bytes_per_s=ds.bytes / seconds, files_per_s=ds.files / seconds,
                       of_link=ds.bytes / seconds / rate if rate else float("nan"),
                       of_product=(product / seconds) if product else float("nan"),
                       ttfb_s=mid.ttfb_s, cpu_s=mid.cpu_s, peak_rss_bytes=mid.peak_rss, settings=mid.settings,
                       median_run=mid.index,
                       all_seconds=[round(r.seconds, 2) if r.ok else None for r in mine])
        rows.append(row)
    return rows


def goals_for(rows: list[dict], runs: list[Run]) -> list[report.Goal]:
    def row(link, name, contender):
        return next((r for r in rows if (r["link"], r["dataset"], r["contender"]) == (link, name, contender)), {})

    nan = float("nan")
    goals = [report.Goal("product, one large file, clean link: share of the link rate (iperf3)",
                         100 * row("clean", "single", "product").get("of_link", nan), 95, "%", at_most=False)]
    for link in ("clean", "lossy"):
        for name in DATASETS:
            tuned = row(link, name, "rclone-tuned").get("of_product", nan)
            goals.append(report.Goal(f"product vs best hand-tuned rclone, {link}, {DATASET_TITLES[name]}",
                                     1 / tuned if tuned == tuned and tuned else nan, 1.0, "×", at_most=False))
    for name, limit, what in (("single", 5, "MB/s"), ("mixed", 5, "MB/s"), ("files64k", 15, "files/s")):
        defaults = row("lossy", name, "rclone-defaults").get("of_product", nan)
        goals.append(report.Goal(f"product vs rclone defaults, lossy link, {DATASET_TITLES[name]} ({what})",
                                 1 / defaults if defaults == defaults and defaults else nan, limit, "×",
                                 at_most=False))
    peaks = [r.peak_rss.get("agent") for r in runs if r.contender == "product" and r.peak_rss.get("agent")]
    goals.append(report.Goal("agent peak RSS (any product run)", max(peaks) / 1e6 if peaks else nan, 60, "MB"))
    return goals


def print_tables(result: dict, goals: list[report.Goal]) -> None:
    print()
    links = [[name, f"{p['rate_mbit']} Mbit/s, {p['rtt_ms']} ms, {p['loss_pct']}% loss, {p['cc']}",
              p["iperf3"]["streams_1_bytes_per_s"] / 1e6, p["iperf3"]["streams_8_bytes_per_s"] / 1e6]
             for name, p in result["links"].items()]
    print(report.table(["link", "set", "iperf3 1 stream MB/s", "iperf3 8 streams MB/s"], links))
    print()
    table = []
    for r in result["summary"]:
        cpu, rss = r.get("cpu_s") or {}, r.get("peak_rss_bytes") or {}
        if r["contender"] == "product":
            cpu_text = f"{_num(cpu.get('agent'))} / {_num(cpu.get('rcd'))}"
            rss_text = f"{_mb(rss.get('agent'))} / {_mb(rss.get('rcd'))}"
        else:
            cpu_text, rss_text = _num(cpu.get("rclone")), _mb(rss.get("rclone"))
        table.append([f"{r['link']} {r['dataset']}", r["contender"], f"{r['runs']}" + (f" ({r['failed']} failed)"
                                                                                       if r["failed"] else ""),
                      r.get("seconds", float("nan")), (r.get("bytes_per_s") or float("nan")) / 1e6,
                      r.get("files_per_s", float("nan")), r.get("of_link", float("nan")),
                      r.get("of_product", float("nan")), r.get("ttfb_s", float("nan")), cpu_text, rss_text,
                      _settings_text(r.get("settings") or {}) if r["contender"] == "rclone-tuned" else ""])
    print(report.table(["case", "contender", "runs", "s", "MB/s", "files/s", "× link", "× product", "1st byte s",
                        "CPU s (agent/rcd)", "peak RSS MB (agent/rcd)", "tuned"], table))
    for r in result["summary"]:
        for error in r["errors"]:
            print(f"  {r['link']} {r['dataset']} {r['contender']}: {error[:300]}")
    for row in result["skipped_for_time"]:
        print(f"  skipped for the time budget: {row['link']} {row['dataset']} {row['contender']} run {row['run']}")
    print()
    for goal in goals:
        print(goal.line())


def _num(value) -> str:
    return "—" if value is None else f"{value:.1f}"


def _mb(value) -> str:
    return "—" if not value else f"{value / 1e6:.0f}"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"product": "#4c72b0", "rclone-defaults": "#c44e52", "rclone-tuned": "#55a868",
               "product (BBR)": "#8172b2"}
    shown = [link for link in ("clean", "lossy") if link in result["links"]]
    fig, axes = plt.subplots(len(shown), 4, figsize=(17, 3.75 * len(shown) + 0.5), squeeze=False)
    runs = result["runs"]
    for row, link in enumerate(shown):
        rate = result["links"][link]["iperf3"]["bytes_per_s"] / 1e6
        for col, name in enumerate(DATASETS):
            ax = axes[row][col]
            if name not in result["datasets"][link]:
                ax.axis("off")
                continue
            for summary in result["summary"]:
                if summary["dataset"] != name or summary["link"] not in (link, f"{link}-bbr") or \
                        "median_run" not in summary:
                    continue
                label = summary["contender"] + (" (BBR)" if summary["link"].endswith("bbr") else "")
                run = next(r for r in runs if (r["link"], r["dataset"], r["contender"], r["run"]) ==
                           (summary["link"], name, summary["contender"], summary["median_run"]))
                series = run["series"]
                # A sample is the rate over the interval ending at its time; the first one's began an
                # interval (about 1 s) earlier.
                first_start = series[0][0] - (series[1][0] - series[0][0] if len(series) > 1 else 1.0) \
                    if series else 0
                xs = [0, max(0, first_start)] + [t for t, _ in series] + [run["seconds"]]
                ys = [0, 0] + [v / 1e6 for _, v in series] + [0]
                ax.step(xs, ys, where="pre", color=colours.get(label, "#937860"), linewidth=1.1,
                        label=f"{label} ({run['seconds']:.0f} s)")
            ax.axhline(rate, color="#333333", linestyle=":", linewidth=0.9, label=f"iperf3 {rate:.1f} MB/s")
            sizes = result["datasets"][link][name]
            ax.set_title(f"{link}: {DATASET_TITLES[name]} ({sizes['files']:,} files, "
                         f"{sizes['bytes'] / MiB:,.0f} MiB)", fontsize=9)
            ax.set_xlabel("s since the command was created / rclone started", fontsize=8)
            ax.set_ylabel("MB/s", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=7, loc="upper right")
    mode = "QUICK MODE (tiny datasets, 1 run each): harness check, not the benchmark's figures" \
        if result["mode"] == "quick" else "median run of each contender"
    fig.suptitle(f"Data path throughput over time, 200 Mbit/s test bed — {mode}", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plan(mode: str, runs: int, lossy_default_runs: int, bbr_runs: int) -> list[list]:
    rows = []
    for link in ("clean", "lossy"):
        single, n1m, n64k, mixed = SIZES[mode][link]
        rows.append([link, f"{single / MiB:,.0f} MiB", f"{n1m:,} × 1 MiB", f"{n64k:,} × 64 KiB",
                     f"~{mixed / MiB:,.0f} MiB", f"up to {runs}" if link == "clean" else
                     f"up to {runs} ({lossy_default_runs} for rclone defaults); BBR row: product, up to {bbr_runs}"])
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.datapath", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny datasets, 1 run each, a subset of the grid "
                                                             "(~5-8 minutes): checks the harness")
    parser.add_argument("--runs", type=int, help="runs per contender and case (median reported); default 3, quick 1")
    parser.add_argument("--links", default="clean,lossy,lossy-bbr", help="comma-separated subset of the links")
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
        with Bed(cc="cubic", **{k: v for k, v in LINKS["clean"].items() if k != "cc"}) as bed:
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
                    contenders = ["product"] if link == "lossy-bbr" else list(CONTENDERS)
                    contenders = [c for c in contenders if c in wanted_contenders]
                    names = BBR_QUICK_DATASETS if (args.quick and link == "lossy-bbr") else DATASETS
                    names = [n for n in names if n in wanted_datasets]
                    for name in names:
                        ds = datasets[base][name]
                        for contender in contenders:
                            wanted = bbr_runs if link == "lossy-bbr" else (
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
                                bed.link.set(**{k: v for k, v in params.items() if k != "cc"})
                                bed.set_congestion_control(params["cc"])
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
