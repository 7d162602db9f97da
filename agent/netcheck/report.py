"""The report in words: its summary line, a no-go found before any step, the tuning
attached, rates and durations as a person reads them."""

from __future__ import annotations

from dtn_protocol.failures import FailureReason
from dtn_protocol.netcheck import Verdict
from dtn_protocol.units import human_speed

GO, WARN, NO_GO = Verdict.GO, Verdict.WARN, Verdict.NO_GO


def refused(endpoint: str, reason: FailureReason, message: str) -> dict:
    """A no-go found before any step could run (e.g. a certificate that is not one)."""
    report = {"endpoint": endpoint, "verdict": NO_GO, "reason": str(reason), "probe": None, "rtt_ms": None,
              "reasons": [{"level": NO_GO, "code": "refused", "message": message}], "advice": []}
    report["summary"] = summarise(report)
    return report


def attach_tuning(report: dict, choice) -> None:
    """The tuning chosen from this report (agent/tuning.Choice) and its prediction, into the report."""
    report.update(tuning=choice.as_dict(), predicted_seconds=choice.predicted_seconds,
                  predicted_bytes_per_s=choice.predicted_bytes_per_s)
    report["summary"] = summarise(report)


def summarise(report: dict) -> str:
    verdict = report["verdict"]
    reasons = report.get("reasons") or []
    if verdict == NO_GO:
        first = next(r for r in reasons if r["level"] == NO_GO)
        return f"No-go ({report['reason']}): {first['message']}."
    parts = []
    rtt = report.get("rtt_ms")
    if rtt:
        parts.append(f"{report['endpoint']} answers in {rtt['median']:.1f} ms")
    probe = report.get("probe")
    if probe:
        when = (f"the probe of {probe['reused_from_seconds_ago']:.0f} s ago" if probe.get("reused_from_seconds_ago")
                is not None else "the probe")
        parts.append(f"{when} carried {human_rate(probe['single_stream_bytes_per_s'])} on one stream and"
                     f" {human_rate(probe['parallel_bytes_per_s'])} on {probe['streams']}")
    if report.get("predicted_seconds") is not None:
        parts.append(f"predicted: {human_seconds(report['predicted_seconds'])}")
    text = "; ".join(parts)
    if verdict == WARN:
        warns = "; ".join(r["message"] for r in reasons if r["level"] == WARN)
        return f"Warn: {warns}" + (f"; {text}." if text else ".")
    return f"Go: {text}." if text else "Go."


def human_rate(bytes_per_s: float) -> str:
    # A path's rate in the link's own unit (as DTN_NETCHECK_SLOW_MBIT is given), then in bytes.
    return f"{bytes_per_s * 8 / 1e6:.1f} Mbit/s ({human_speed(bytes_per_s)})"


def human_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {(seconds % 3600) // 60} min"

