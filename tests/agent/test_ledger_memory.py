"""The sender's ledger costs the same per file for 20,000 files as for 200,000 (issue 22), and
little: each file's entry, its name in its source's plan, its checksum, what is kept for a report
not yet delivered, and what is left once the reports got through. Measured with tracemalloc on
synthetic entries made the way the walk makes them (SourcePlan.entry_for)."""

from __future__ import annotations

import gc
import hashlib
import tracemalloc
import weakref
from datetime import datetime, timezone
from pathlib import Path

from agent.paths import Resolved
from agent.sender.ledger import Ledger, SourcePlan
from agent.sender.meter import MAX_FILES_PER_REPORT, Meter
from dtn_protocol.states import FileOutcome

ROOT = Path("/srv/dtn/send/dataset-2026/run-17")
# Per file, over everything the sender keeps while a report is pending and after all are delivered.
MAX_BYTES_PER_FILE = 600


def _name(i: int) -> str:
    return f"sub-{i // 1000:04d}/sample-{i:07d}.dat"


def _digest(i: int) -> str:
    return hashlib.sha256(i.to_bytes(4, "big")).hexdigest()


def measure(count: int) -> dict[str, float]:
    """Bytes per file: listed; hashed and settled (one report pending); every report delivered."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    ledger = Ledger()
    plan = SourcePlan(0, Resolved("dataset-2026/run-17", ROOT, True), {})
    for i in range(count):
        plan.entry_for(_name(i), 100 + i % 4000, ledger)
    listed = tracemalloc.get_traced_memory()[0]
    meter = Meter(ledger, clock=lambda: 0.0, now=lambda: datetime(2026, 1, 1, tzinfo=timezone.utc),
                  command_id="c", attempt=1)
    for i, entry in enumerate(plan.files.values()):
        entry.hash_wanted = True
        entry.sha256 = _digest(i)  # as the hasher sets it
        ledger.settle(entry, FileOutcome.SENT)
    settled = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    progress, files, events = meter.snapshot()
    pending, peak = tracemalloc.get_traced_memory()
    assert len(files) == MAX_FILES_PER_REPORT
    while files:
        meter.delivered(progress, files, events)
        del progress, files
        progress, files, events = meter.snapshot()
    delivered = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert ledger.count == count and not ledger.unreported and ledger.counts[FileOutcome.SENT] == count
    assert plan.entry_for(_name(count - 1), 0, ledger).path == ROOT / _name(count - 1)
    return {"listed": (listed - base) / count, "pending": (pending - base) / count,
            "delivered": (delivered - base) / count, "report_peak_bytes": peak - settled}


def test_the_ledger_costs_the_same_per_file_for_20000_and_200000_files():
    small, large = measure(20_000), measure(200_000)
    print(f"\nLEDGER bytes per file: 20,000 files {small}; 200,000 files {large}")
    # Making a report costs what the report holds (MAX_FILES_PER_REPORT files), not a pass copying every
    # file still to be reported.
    assert large.pop("report_peak_bytes") <= small.pop("report_peak_bytes") * 1.25 + 65536, (small, large)
    for stage in small:
        assert large[stage] <= small[stage] * 1.10 + 8, (stage, small, large)
        assert large[stage] <= MAX_BYTES_PER_FILE, (stage, large)


def test_a_commands_ledger_is_gone_when_the_command_ends_without_waiting_for_the_cyclic_collector(tmp_path,
                                                                                                   monkeypatch):
    # An attempt is a web of cycles; its ledger (every file's entry) must not outlive the command until
    # Python's full collection happens to run: that grew the agent by a ledger a transfer (issue 22).
    from tests.agent.fakes import FakeChannel, FakeRc, Frame, done
    from tests.agent.test_transfer import command, runner, stats

    made = []

    class Recorded(Ledger):
        def __init__(self):
            super().__init__()
            made.append(weakref.ref(self))

    monkeypatch.setattr("agent.sender.attempt.Ledger", Recorded)
    send = tmp_path / "send"
    (send / "run").mkdir(parents=True)
    (send / "run" / "a.bin").write_bytes(b"a" * 1000)
    rc = FakeRc([Frame(stats=stats(0, 0)),
                 Frame(finished=True, success=True, stats=stats(1000, 1), transferred=[done("a.bin", 1000, n=1)])])
    gc.collect()
    gc.disable()
    try:
        outcome = runner(rc, send, tmp_path).run(command(), FakeChannel())
        assert outcome.state == "succeeded", outcome
        assert len(made) == 1 and made[0]() is None
    finally:
        gc.enable()
