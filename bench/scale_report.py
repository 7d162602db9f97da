"""`make bench-scale`'s goals (issue 22) and tables."""

from __future__ import annotations

import math

from bench import report

NAN = math.nan
# label -> the bound on its peak RSS, MB (10^6 bytes, as the other benches)
RSS_GOALS = {"sender agent": 120, "receiver agent": 150, "portal worker": 300}
API_SECONDS, CSV_SECONDS, VS_RCLONE = 1.0, 30.0, 0.8
PROCESS_ORDER = ("sender agent", "sender rcd", "sender other", "receiver agent", "receiver serve s3",
                 "receiver other", "portal master", "portal worker", "rclone copy", "rclone serve s3")


def _max(values) -> float:
    values = [v for v in values if v is not None]
    return max(values) if values else NAN


def goals_for(runs: dict, tree) -> list[report.Goal]:
    product, rclone = runs.get("product") or {}, runs.get("rclone") or {}
    processes = product.get("processes") or {}
    probes = product.get("probes") or []
    goals = [report.Goal("files verified (every file of the tree)",
                         (product.get("files") or {}).get("verified", NAN),
                         tree.files if tree else NAN, "files", at_most=False)]
    for name, limit in RSS_GOALS.items():
        peak = (processes.get(name) or {}).get("peak_rss_bytes")
        what = "each portal worker" if name == "portal worker" else name
        goals.append(report.Goal(f"{what}: peak RSS", peak / 1e6 if peak else NAN, limit, "MB"))
    for when in ("during", "after"):
        chosen = [p for p in probes if p["when"] == when]
        # No sample at all is a miss: the goal says nothing then.
        goals.append(report.Goal(f"transfer API answer, {when} (largest of {len(chosen)})",
                                 1000 * _max(p.get("api_s") for p in chosen) if all("api_s" in p for p in chosen)
                                 else NAN, 1000 * API_SECONDS, "ms"))
        goals.append(report.Goal(f"CSV manifest, {when} (largest of {len(chosen)})",
                                 _max(p.get("csv_s") for p in chosen) if all("csv_s" in p for p in chosen) else NAN,
                                 CSV_SECONDS, "s"))
    ours, theirs = product.get("files_per_s"), rclone.get("files_per_s")
    # As a percentage: a ratio printed to one decimal would read 0.8 for 0.77.
    goals.append(report.Goal("product files/s as a share of rclone copy --transfers 64's",
                             100 * ours / theirs if ours and theirs else NAN, 100 * VS_RCLONE, "%", at_most=False))
    return goals


def per_file(timeline: list[dict], label: str) -> float:
    """Bytes of RSS per file sent, the least-squares slope of `label`'s RSS on files transferred over the
    timeline's second half (start-up and the first transfer's one-off costs left out); NaN if too few."""
    points = [(t["transferred"], t["rss_bytes"].get(label)) for t in timeline
              if t.get("transferred") and t["rss_bytes"].get(label)]
    points = points[len(points) // 2:]
    if len(points) < 3 or points[-1][0] == points[0][0]:
        return NAN
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else NAN


GROWTH_LABELS = ("sender agent", "sender rcd", "receiver agent", "receiver serve s3", "portal worker")


def growth(product: dict, files: int, at: int = 1_000_000) -> dict:
    """label -> bytes per file sent (slope), and the peak projected to `at` files two ways: `by_slope` (the
    peak plus the slope for the files not sent here: memory that grows as files are sent) and
    `proportional` (the growth of the peak over the first sample, before the walk, times at/files: memory
    taken up front for the whole tree, as the sender's ledger is, shows no slope while sending)."""
    out = {}
    timeline = product.get("timeline") or []
    for label in GROWTH_LABELS:
        slope = per_file(timeline, label)
        peak = ((product.get("processes") or {}).get(label) or {}).get("peak_rss_bytes")
        base = (timeline[0]["rss_bytes"].get(label) if timeline else None)
        out[label] = {"bytes_per_file": None if math.isnan(slope) else round(slope),
                      f"projected_peak_at_{at}": {
                          "by_slope": round(peak + slope * (at - files)) if peak and not math.isnan(slope) else None,
                          "proportional": round(base + (peak - base) * at / files) if peak and base else None}}
    return out


def _thin(rows: list, most: int = 16) -> list:
    """At most `most` rows, evenly spread, the last one kept."""
    if len(rows) <= most:
        return rows
    step = len(rows) / (most - 1)
    return [rows[int(i * step)] for i in range(most - 1)] + [rows[-1]]


def print_tables(result: dict, goals: list[report.Goal]) -> None:
    runs, tree = result["runs"], result["tree"]
    print()
    print(f"tree: {tree['files']:,} files, {tree['bytes'] / 1e6:,.1f} MB, {tree['folders']:,} folders;"
          f" written in {tree['write_seconds']} s; removed in {result['cleanup'].get('remove_tree_s')} s")
    rows = []
    for name, run in runs.items():
        rows.append([name, "ok" if run["ok"] else "FAILED", run.get("seconds", NAN), run.get("files_per_s", NAN),
                     run.get("wall_s", NAN), (run.get("files") or {}).get("verified", "—") if name == "product" else "—",
                     f"{run['landed']['files']:,}", run.get("remove_received_s", NAN)])
    print(report.table(["contender", "", "s", "files/s", "wall s", "verified", "landed", "rm received s"], rows))
    for name, run in runs.items():
        if run.get("error"):
            print(f"  {name}: {run['error'][:400]}")
    print()
    rows = []
    for name, run in runs.items():
        processes = run.get("processes") or {}
        for label in sorted(processes, key=lambda k: (PROCESS_ORDER.index(k) if k in PROCESS_ORDER else 99, k)):
            entry = processes[label]
            rows.append([name, label, entry.get("processes", 1), (entry.get("peak_rss_bytes") or NAN) / 1e6,
                         entry.get("cpu_s", NAN)])
    print(report.table(["run", "process", "count", "peak RSS MB (largest)", "CPU s (all)"], rows))
    product = runs.get("product")
    if product:
        workers = product.get("portal_workers") or []
        if workers:
            print("  portal workers: " + ", ".join(f"pid {w['pid']} {w['peak_rss_bytes'] / 1e6:.0f} MB" for w in workers))
        db = product["database"]
        if db.get("growth_bytes") is not None:
            print(f"  portal database ({db['url_kind']}): {db['bytes_before'] / 1e6:,.1f} MB before,"
                  f" {db['bytes_after'] / 1e6:,.1f} MB after: +{db['growth_bytes'] / 1e6:,.1f} MB"
                  f" ({db['growth_bytes'] / max(1, tree['files']):,.0f} bytes a file)")
        print()
        shown = ("sender agent", "sender rcd", "receiver agent", "receiver serve s3", "portal worker")
        rows = [[t["at_s"], t["state"], t.get("transferred"), t.get("verified"),
                 *[(t["rss_bytes"].get(k) or NAN) / 1e6 for k in shown]] for t in _thin(product.get("timeline") or [])]
        print(report.table(["at s", "state", "transferred", "verified", *[f"{k} MB" for k in shown]], rows))
        grown = {k: v for k, v in (product.get("growth") or {}).items() if v["bytes_per_file"] is not None}
        if grown:
            print("  RSS per file sent (slope over the second half); the peak projected to 1,000,000 files by that"
                  " slope / in proportion to the files (growth over the first sample × 1,000,000/N):")
            for k, v in grown.items():
                projected = v["projected_peak_at_1000000"]
                print(f"    {k}: {v['bytes_per_file']:,} B/file; ~{(projected['by_slope'] or NAN) / 1e6:,.0f} MB /"
                      f" ~{(projected['proportional'] or NAN) / 1e6:,.0f} MB")
        print()
        rows = [[p["when"], p["at_s"], p.get("state", "—"), p.get("files_transferred", "—"),
                 p.get("files_verified", "—"), 1000 * p.get("api_s", NAN), p.get("csv_s", NAN), p.get("csv_rows", "—"),
                 (p.get("db_bytes") or NAN) / 1e6] for p in product.get("probes") or []]
        print(report.table(["probe", "at s", "state", "transferred", "verified", "API ms", "CSV s", "CSV rows",
                            "DB MB"], rows))
    print()
    for goal in goals:
        print(goal.line())
