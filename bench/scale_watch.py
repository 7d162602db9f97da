"""What `make bench-scale` watches while a transfer runs: every process of the product by role (peak RSS
from /proc/<pid>/status VmHWM, also VmRSS, and CPU), the portal's database size, and the answer times
of the transfer's API record and of its CSV manifest, sampled every ~30 s."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import requests

from bench.contenders import TICK

# --- processes ---------------------------------------------------------------------------------------------


def _table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process of this host."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                parent = int(handle.read().rsplit(b")", 1)[1].split()[1])
            with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                cmd = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        found[int(entry.name)] = (parent, cmd)
    return found


def _tree(table: dict, root: int) -> list[tuple[int, str, int]]:
    """(pid, command line, depth) of `root` and every process below it."""
    out, frontier, depth = [], [root], 0
    if root in table:
        out.append((root, table[root][1], 0))
    while frontier:
        depth += 1
        parents = set(frontier)
        frontier = [pid for pid, (parent, _) in table.items() if parent in parents]
        out += [(pid, table[pid][1], depth) for pid in frontier]
    return out


def _status(pid: int) -> dict | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            text = handle.read()
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    found = {"cpu_s": (int(fields[11]) + int(fields[12])) / TICK}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            found[name] = int(value.split()[0]) * 1024
    return found if "VmHWM" in found else None


class ProcessWatch:
    """Samples, every `interval` seconds on a thread of its own, every process below the given roots, each
    named by `label(root_name, cmd, depth)`; per pid its largest VmHWM and VmRSS and its last CPU seconds."""

    def __init__(self, roots: dict[str, int], interval: float = 1.0):
        self.roots, self.interval = roots, interval
        self.seen: dict[int, dict] = {}  # pid -> {"label", "cmd", "peak_rss", "rss", "cpu_s", "first", "last"}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="scale-rss")
        self._started = time.monotonic()

    def start(self) -> "ProcessWatch":
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        table = _table()
        now = round(time.monotonic() - self._started, 1)
        for root_name, root in self.roots.items():
            for pid, cmd, depth in _tree(table, root):
                status = _status(pid)
                if status is None:
                    continue
                row = self.seen.setdefault(pid, {"label": label(root_name, cmd, depth), "cmd": cmd[:160],
                                                 "peak_rss": 0, "rss": 0, "first": now})
                row["peak_rss"] = max(row["peak_rss"], status["VmHWM"], status.get("VmRSS", 0))
                row["rss"] = max(row["rss"], status.get("VmRSS", 0))
                row["now_rss"] = status.get("VmRSS", 0)
                row["now_hwm"] = status["VmHWM"]
                row["cpu_s"] = round(status["cpu_s"], 2)
                row["last"] = now
        self.samples += 1
        self._last = now

    def current(self, field: str = "now_rss") -> dict[str, int]:
        """label -> the largest VmRSS (or, with "now_hwm", VmHWM: the peak so far) among its processes alive
        at the last sample."""
        out: dict[str, int] = {}
        for row in self.seen.values():
            if row["last"] == getattr(self, "_last", None):
                out[row["label"]] = max(out.get(row["label"], 0), row[field])
        return out

    def by_label(self) -> dict[str, dict]:
        """label -> the largest peak RSS among its processes, their count, and their CPU seconds in all."""
        out: dict[str, dict] = {}
        for pid, row in sorted(self.seen.items()):
            entry = out.setdefault(row["label"], {"peak_rss_bytes": 0, "processes": 0, "cpu_s": 0.0, "pids": []})
            entry["peak_rss_bytes"] = max(entry["peak_rss_bytes"], row["peak_rss"])
            entry["processes"] += 1
            entry["cpu_s"] = round(entry["cpu_s"] + row.get("cpu_s", 0), 2)
            entry["pids"].append(pid)
        return out

    def workers(self, prefix: str = "portal worker") -> list[dict]:
        return [{"pid": pid, "peak_rss_bytes": row["peak_rss"], "cpu_s": row.get("cpu_s")}
                for pid, row in sorted(self.seen.items()) if row["label"] == prefix]


def label(root_name: str, cmd: str, depth: int) -> str:
    """What a process is, from the tree it is in and its command line."""
    if root_name == "portal":
        return "portal master" if depth == 0 else "portal worker"
    if root_name.startswith("rclone"):  # rclone copy and the plain serve s3: the process itself
        return root_name if depth == 0 else f"{root_name} child"
    if depth == 0:
        return f"{root_name} agent"
    if " rcd" in cmd:
        return f"{root_name} rcd"
    if "serve s3" in cmd:
        return f"{root_name} serve s3"
    return f"{root_name} other"  # e.g. serve s3's auth proxy, run once per key


# --- the portal's database -----------------------------------------------------------------------------------


def database_bytes(database_url: str) -> int | None:
    """The portal database's size: the SQLite file with its journal, or pg_database_size."""
    if database_url.startswith("sqlite:///"):
        path = Path(database_url[len("sqlite:///"):])
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"),
                                              Path(f"{path}-journal")) if p.exists())
    if database_url.startswith(("postgres://", "postgresql://")):
        import psycopg2

        connection = psycopg2.connect(database_url)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_database_size(current_database())")
                return cursor.fetchone()[0]
        finally:
            connection.close()
    return None


# --- the API record and the CSV manifest, timed ------------------------------------------------------------


class Probe:
    """GET /api/v1/transfers/{id} and GET .../manifest.csv (read to its last byte), timed, every `every`
    seconds on a thread of its own while the transfer runs; once more after with `once()`."""

    def __init__(self, base_url: str, token_header: str, transfer_id: str, every: float = 30.0,
                 database_url: str = ""):
        self.url = f"{base_url}/api/v1/transfers/{transfer_id}"
        self.session = requests.Session()
        self.session.headers["Authorization"] = token_header
        self.every, self.database_url = every, database_url
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="scale-probe")
        self._origin = time.monotonic()

    def start(self) -> "Probe":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(600)

    def _run(self) -> None:
        # The first at ~every/2 (the transfer under way), then every `every` seconds from the last start.
        if self._stop.wait(self.every / 2):
            return
        while True:
            begun = time.monotonic()
            self.samples.append(self.once("during"))
            if self._stop.wait(max(1.0, self.every - (time.monotonic() - begun))):
                return

    def once(self, when: str) -> dict:
        sample = {"when": when, "at_s": round(time.monotonic() - self._origin, 1)}
        started = time.monotonic()
        try:
            response = self.session.get(self.url, timeout=120)
            sample["api_s"] = round(time.monotonic() - started, 3)
            sample["api_status"] = response.status_code
            if response.ok:
                record = response.json()
                sample["state"] = record.get("state")
                sample["files_transferred"] = (record.get("files") or {}).get("transferred")
                sample["files_verified"] = (record.get("files") or {}).get("verified")
                sample["api_bytes"] = len(response.content)
        except requests.RequestException as exc:
            sample["api_error"] = f"{type(exc).__name__}: {exc}"[:200]
        started = time.monotonic()
        try:
            with self.session.get(f"{self.url}/manifest.csv", timeout=600, stream=True) as response:
                lines = size = 0
                for chunk in response.iter_content(1 << 16):
                    lines += chunk.count(b"\n")
                    size += len(chunk)
                sample["csv_s"] = round(time.monotonic() - started, 3)
                sample["csv_status"] = response.status_code
                sample["csv_rows"] = max(0, lines - 1)
                sample["csv_bytes"] = size
        except requests.RequestException as exc:
            sample["csv_error"] = f"{type(exc).__name__}: {exc}"[:200]
        if self.database_url:
            try:
                sample["db_bytes"] = database_bytes(self.database_url)
            except Exception as exc:  # a figure missing, not the run
                sample["db_error"] = f"{type(exc).__name__}: {exc}"[:200]
        return sample
