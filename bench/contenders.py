"""The data-path benchmark's contenders, each timed sending a dataset across the bed's WAN:
the product (a transfer through the portal's API), `rclone copy` at its defaults and
hand-tuned (the best point of a grid, found by short passes); and iperf3 for the link's
own rate. CPU and peak memory of each process come from /proc. `world` is bench/datapath.py's:
the product in the bed, and a plain S3 server beside it."""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.datasets import Dataset, landed
from tests.harness import RCLONE, wait_for

FINISHED = ("succeeded", "failed", "canceled")


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


def rcd_pid(agent) -> int | None:
    """The agent's `rclone rcd` (the agent restarts it if it dies, so look it up each run)."""
    return next((pid for pid, cmd in agent.descendants() if " rcd" in cmd), None)


def parse_time(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


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


def run_product(world, ds: Dataset, run: Run, timeout: float) -> Run:
    agent, agent_pid = world.sender_agent, world.sender_agent.pid
    rcd = rcd_pid(agent)
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
        current = rcd_pid(agent)
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
    rcd_after = rcd_pid(agent)
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


def run_rclone(world, ds: Dataset, run: Run, settings: dict, timeout: float) -> Run:
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


def short_pass(world, ds: Dataset, settings: dict, seconds: float) -> float:
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


def find_best(world, link: str, datasets: dict[str, Dataset], grid: dict, seconds: float) -> dict:
    """The hand-tuned settings per dataset: the best grid point by the short pass."""
    found = {}

    def best_of(name, points):
        tried = []
        for settings in points:
            rate = short_pass(world, datasets[name], settings, seconds)
            tried.append({"settings": settings, "bytes_per_s": round(rate, 1)})
            print(f"    grid {link:5} {name:8} {settings_text(settings):32} {rate / 1e6:7.2f} MB/s on the WAN",
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


def settings_text(settings: dict) -> str:
    parts = []
    if "transfers" in settings:
        parts.append(f"transfers {settings['transfers']}")
    if "upload_concurrency" in settings:
        parts.append(f"concurrency {settings['upload_concurrency']} × {settings['chunk_size']}")
    return ", ".join(parts) or "defaults"


