"""The sender: one `transfer` command run with rclone (docs/agent.md, "Running a
transfer"). `TransferRunner.run(command, channel)` returns its Outcome.

    runner.py       what lasts between commands: settings, tools, the probe cache
    attempt.py      one run of a command, step by step, and its outcome
    spec.py         the command's payload, checked
    destination.py  the receiver: its inline remote for rclone, its certificate pinned
    ledger.py       the sources walked, and what became of each file
    hasher.py       SHA-256 of each file, beside the transfer
    meter.py        what a progress report says
    lease.py        every wait, keeping the lease: heartbeats, reports, stop, shutdown
    preflight.py    the network check (retries, probe cache), the tuning, rclone's look
    sending.py      the sources through rclone: jobs, segments, restarts
    job.py          one rclone job: start, watch, observe, settle, stop
    verdict.py      the receiver's verdict on what landed
    tasks.py        the sender's side-channel tasks
    errors.py       what ends an attempt early
"""

from agent.sender.runner import Outcome, TransferRunner

__all__ = ["Outcome", "TransferRunner"]
