"""What every benchmark here hands back, the same way: a printed table, goals
marked PASS or MISS, and one JSON file under bench/results/ holding the figures,
the goals and the machine they were measured on (docs/performance.md quotes it).

Benchmarks are not tests: a MISS is a finding to explain, not a failure, so the
exit status says only whether the run itself completed."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
FIGURES = REPO / "docs" / "img"


@dataclass
class Goal:
    name: str
    value: float
    limit: float
    unit: str
    at_most: bool = True  # False: the value must reach the limit

    @property
    def met(self) -> bool:
        if self.value is None or math.isnan(self.value):
            return False
        return self.value <= self.limit if self.at_most else self.value >= self.limit

    def line(self) -> str:
        sign = "≤" if self.at_most else "≥"
        return f"{'PASS' if self.met else 'MISS'}  {self.name}: {fmt(self.value)} {self.unit} (goal {sign} {fmt(self.limit)} {self.unit})"

    def as_dict(self) -> dict:
        return {**asdict(self), "met": self.met}


def percentile(values, q: float) -> float:
    """The q-th percentile (0–100) by linear interpolation; NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(seconds) -> dict:
    """Count and percentiles in milliseconds of a list of durations in seconds."""
    values = [s * 1000 for s in seconds]
    return {"count": len(values), **{f"p{q}": percentile(values, q) for q in (50, 90, 95, 99)},
            "max": max(values) if values else math.nan}


def fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(h) for h in headers]] + [[fmt(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    return "\n".join([line(cells[0]), line(["-" * w for w in widths]), *map(line, cells[1:])])


def machine() -> dict:
    """Where the figures come from: they mean little without it."""
    model = ""
    try:
        for row in Path("/proc/cpuinfo").read_text().splitlines():
            if row.startswith("model name"):
                model = row.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        memory_gib = round(kib / 1024 / 1024, 1)
    except (OSError, IndexError, ValueError):
        pass
    return {
        "cpu": model or platform.processor(),
        "cores": len(os.sched_getaffinity(0)),
        "memory_gib": memory_gib,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_before": os.getloadavg()[0],
        "commit": _git("rev-parse", "--short", "HEAD"),
    }


def _git(*args) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def write(name: str, result: dict) -> Path:
    """bench/results/<name>.json, replaced by each run; git keeps the history."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    result = {"benchmark": name, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **result}
    path.write_text(json.dumps(_plain(result), indent=2, allow_nan=False) + "\n")
    return path


def _plain(value):
    """JSON has no NaN (a percentile of nothing): it is written as null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
