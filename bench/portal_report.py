"""The control-plane benchmark's figures: latencies and rates from the load's samples, the
goals, the printed table and the plot (docs/performance.md)."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from bench import report
from bench.fleet import RUN_SECONDS, TASK_HOLD_SECONDS, Run
from bench.pgwatch import MAX_CONNECTIONS


def analyse(run: Run, window, end, into, calibration, args) -> dict:
    start, stop = window
    in_window = [s for s in run.samples if start <= s.started < stop]
    by_kind = defaultdict(list)
    for sample in in_window:
        by_kind[sample.kind].append(sample)
    claim_latency, queued_to_claimed = [], []
    for command_id, sent in run.sent.items():
        if command_id not in run.claims:
            continue
        claim_sent, in_hand = run.claims[command_id]
        if sent.mode == "idle" and claim_sent < sent.started:
            # Held when the person pressed send: from the send request to the command in the agent's hands.
            queued_to_claimed.append((sent.started, in_hand - sent.started))
        elif claim_sent >= sent.answered:
            # The command was waiting when the claim was sent: the claim's own round trip.
            claim_latency.append((claim_sent, in_hand - claim_sent))
    unclaimed = sum(1 for c in run.sent if c not in run.claims)
    errors = dict(run.errors)
    if unclaimed:
        errors["sent but never claimed"] = unclaimed
    seconds = stop - start
    kinds = {kind: {**report.summary_ms([s.seconds for s in samples]),
                    "per_second": len(samples) / seconds}
             for kind, samples in sorted(by_kind.items())}
    claim = report.summary_ms([d for _, d in claim_latency])
    queued = report.summary_ms([d for _, d in queued_to_claimed])
    per_claim = [c["statements_per_claim"] for c in calibration]
    error_count = sum(errors.values())
    goals = [
        report.Goal("claim latency p99", claim["p99"], 100, "ms"),
        report.Goal("queued → claimed p95", queued["p95"] / 1000, 1, "s"),
        report.Goal("errors", error_count, 0, ""),
    ]
    return {
        "settings": {"agents": args.agents, "duration_seconds": args.duration, "warmup_seconds": args.warmup,
                     "sends_per_second": args.rate, "heartbeat_seconds": args.heartbeat_seconds,
                     "claim_hold_seconds": args.hold_seconds, "task_hold_seconds": TASK_HOLD_SECONDS,
                     "run_seconds_per_command": RUN_SECONDS, "web_workers": args.workers,
                     "db_threads_per_worker": args.db_threads, "max_connections": MAX_CONNECTIONS},
        "claim_latency_ms": claim,
        "queued_to_claimed_ms": queued,
        "requests_per_second": sum(k["per_second"] for k in kinds.values()),
        "requests": kinds,
        "statements_per_claim": per_claim,
        "calibration": calibration,
        "errors": errors,
        "error_examples": run.error_examples,
        "sent": len(run.sent),
        "sends_not_placed": dict(run.unplaced),
        "unclaimed": unclaimed,
        "peak_server_connections": into.get("peak_server_connections"),
        "cpu_cores_used": into.get("cpu_cores_used", {}),
        # Requests ended per second over the same window, so this is the server's cost of one request.
        "server_cpu_ms_per_request": _cpu_per_request(into, sum(k["per_second"] for k in kinds.values())),
        "goals": [g.as_dict() for g in goals],
        "series": {
            "claim_latency": [(round(t - start, 2), round(d * 1000, 2)) for t, d in claim_latency],
            "queued_to_claimed": [(round(t - start, 2), round(d * 1000, 2)) for t, d in queued_to_claimed],
            "requests": _per_second(in_window, start, stop),
        },
        "_goals": goals,
    }


def _cpu_per_request(into: dict, per_second: float) -> float | None:
    cores = into.get("cpu_cores_used", {}).get("portal server")
    return round(cores / per_second * 1000, 2) if cores is not None and per_second else None


def _per_second(samples, start, stop) -> list:
    counts = Counter(int(s.started - start + s.seconds) for s in samples)
    return [counts.get(second, 0) for second in range(int(stop - start))]


def print_result(result: dict):
    print()
    rows = [["claim (command waiting)", *_row(result["claim_latency_ms"]), "—"],
            ["queued → claimed (held claim)", *_row(result["queued_to_claimed_ms"]), "—"]]
    for kind, figures in result["requests"].items():
        rows.append([f"{kind} request", *_row(figures), figures["per_second"]])
    print(report.table(["what", "count", "p50 ms", "p95 ms", "p99 ms", "max ms", "per s"], rows))
    print()
    calibration = result["calibration"]
    facts = [
        ["requests/s (all agents and sends)", result["requests_per_second"]],
        *[[f"statements per claim, {c['waiting_agents']:,} agents waiting", c["statements_per_claim"]]
          for c in calibration],
        ["server's connections to PostgreSQL, peak", result["peak_server_connections"]],
        ["PostgreSQL max_connections", MAX_CONNECTIONS],
        *[[f"CPU cores used: {who}", used] for who, used in result["cpu_cores_used"].items()],
        ["portal server CPU per request, ms", result.get("server_cpu_ms_per_request", "—")],
        ["errors", sum(result["errors"].values())],
        ["sends not placed (no agent idle or busy at that instant; not an error)",
         sum(result.get("sends_not_placed", {}).values())],
    ]
    print(report.table(["figure", "value"], facts))
    if result["errors"]:
        print("errors:", dict(result["errors"]))
        for example in result["error_examples"]:
            print("  ", example)
    print()
    for goal in result.pop("_goals"):
        print(goal.line())


def _row(figures):
    return [figures["count"], figures["p50"], figures["p95"], figures["p99"], figures["max"]]


def plot(result: dict, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (bars, series) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [1, 1.4]})
    kinds = [("claim\n(waiting)", result["claim_latency_ms"]), ("queued →\nclaimed", result["queued_to_claimed_ms"])]
    kinds += [(f"{kind}\nrequest", figures) for kind, figures in result["requests"].items()
              if kind in ("heartbeat", "report", "send")]
    width = 0.26
    for offset, (q, colour) in enumerate((("p50", "#4c72b0"), ("p95", "#dd8452"), ("p99", "#c44e52"))):
        # A figure with no samples (nothing claimed that way) has no bar.
        shown = [(i, f[q]) for i, (_, f) in enumerate(kinds) if f[q] == f[q] and f[q] is not None]
        bars.bar([i + (offset - 1) * width for i, _ in shown], [max(v, 0.1) for _, v in shown], width, label=q,
                 color=colour)
    bars.set_xticks(range(len(kinds)), [name for name, _ in kinds], fontsize=8)
    bars.set_yscale("log")
    bars.set_ylabel("ms (log scale)")
    bars.axhline(100, color="#c44e52", linestyle=":", linewidth=1)
    label = {"ha": "left", "va": "bottom", "fontsize": 7, "bbox": {"facecolor": "white", "edgecolor": "none", "alpha": 0.8}}
    bars.text(-0.45, 105, "claim p99 goal 100 ms", color="#c44e52", **label)
    bars.axhline(1000, color="#dd8452", linestyle=":", linewidth=1)
    bars.text(-0.45, 1050, "queued → claimed p95 goal 1 s", color="#dd8452", **label)
    bars.legend(fontsize=8, loc="lower right")
    bars.set_title(f"Latency percentiles, {result['settings']['agents']:,} agents", fontsize=10)

    for name, colour in (("queued_to_claimed", "#dd8452"), ("claim_latency", "#4c72b0")):
        points = [(t, d) for t, d in result["series"][name] if d > 0]
        series.scatter([t for t, _ in points], [d for _, d in points], s=4, color=colour, alpha=0.6,
                       label="queued → claimed" if name == "queued_to_claimed" else "claim (command waiting)")
    if any(result["series"][name] for name in ("queued_to_claimed", "claim_latency")):
        series.set_yscale("log")
    else:
        series.text(0.5, 0.5, "no command was claimed in time", transform=series.transAxes, ha="center")
    series.set_xlabel("seconds into the measured window")
    series.set_ylabel("ms (log scale)")
    rate = series.twinx()
    counts = result["series"]["requests"]
    rate.plot(range(len(counts)), counts, color="#55a868", linewidth=0.8, label="requests/s")
    rate.set_ylabel("requests/s ended (answered or failed)", color="#55a868")
    rate.set_ylim(0, max(counts or [1]) * 1.6)
    handles = series.get_legend_handles_labels()[0] + rate.get_legend_handles_labels()[0]
    series.legend(handles=handles, fontsize=8, loc="upper left", markerscale=3)
    series.set_title("Each claim over the run, and the request rate", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
