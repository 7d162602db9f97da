"""The data-path benchmark's figures from its runs: the summary per case, the goals, the
printed tables and the plot (docs/performance.md)."""

from __future__ import annotations

import statistics
from pathlib import Path

from bench import report
from bench.contenders import Run, settings_text
from bench.datasets import DATASET_TITLES, DATASETS
from tests.harness import MiB


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
    for name in DATASETS:
        # Issue 28: the sender's namespace tuned by tcp-tune against the same product on cubic defaults.
        cubic, tuned = row("lossy", name, "product"), row("lossy-tuned", name, "product")
        gain = max(tuned.get("bytes_per_s", nan) / cubic.get("bytes_per_s", nan),
                   tuned.get("files_per_s", nan) / cubic.get("files_per_s", nan)) if cubic and tuned else nan
        goals.append(report.Goal(f"product, sender tuned (tcp-tune) vs cubic defaults, lossy link,"
                                 f" {DATASET_TITLES[name]}", gain, 2.0, "×", at_most=False))
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
                      settings_text(r.get("settings") or {}) if r["contender"] == "rclone-tuned" else ""])
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
               "product (tuned)": "#8172b2"}
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
                if summary["dataset"] != name or summary["link"] not in (link, f"{link}-tuned") or \
                        "median_run" not in summary:
                    continue
                label = summary["contender"] + (" (tuned)" if summary["link"].endswith("-tuned") else "")
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

