"""The sender's entry point: `TransferRunner.run(command, channel)` runs one `transfer`
command (docs/protocol.md) and returns its outcome. The runner holds what lasts from
one command to the next (the agent's settings, the tools, the probes of recent
checks); each run is an Attempt of its own."""

from __future__ import annotations

import gc
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from agent import netcheck
from agent.rclone import RcClient
from agent.sender.attempt import Attempt, Outcome
from agent.sender.destination import peer_certificate_sha256
from agent.sender.lease import Channel
from agent.sender.preflight import ProbeCache, minio_s3
from dtn_protocol.endpoints import Rule

def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class TransferRunner:
    def __init__(self, rc: RcClient, *, send_dir: Path, state_dir: Path, transfers: int = 4,
                 receiver_attempts: int = 3, receiver_retry_seconds: float = 5.0, progress_seconds: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 now: Callable[[], datetime] = _utcnow,
                 tls_fingerprint: Callable[[str, int], str] | None = None,
                 tcp_probe: Callable[[str, int, float], None] | None = None,
                 network_limits: netcheck.Limits = netcheck.Limits(),
                 s3_factory: Callable[..., netcheck.S3] | None = None,
                 tune: bool = True, endpoint_rule: Rule = Rule(), resume_cutoff: int | None = None):
        self.rc = rc
        self.send_dir = Path(send_dir).resolve()
        self.state_dir = Path(state_dir)
        self.transfers = transfers
        self.receiver_attempts = receiver_attempts
        self.receiver_retry_seconds = receiver_retry_seconds
        self.progress_seconds = progress_seconds
        self.clock, self.sleep, self.now = clock, sleep, now
        self.tls_fingerprint = tls_fingerprint or peer_certificate_sha256
        self.tcp_probe = tcp_probe or netcheck.tcp_connect_to
        self.network_limits = network_limits
        self.s3_factory = s3_factory or minio_s3
        self.probes = ProbeCache()
        self.tune = tune
        self.endpoint_rule = endpoint_rule
        # Files from this size are sent by the agent's own multipart upload (agent/sender/bigfiles.py).
        self.resume_cutoff = resume_cutoff

    def run(self, command: dict, channel: Channel) -> Outcome:
        outcome = Attempt(self, command, channel).run()
        # An attempt is a web of cycles (its jobs' tools call back into it, its sending and its large files'
        # uploads point at each other): without this its ledger, every file's entry, the plans and the listings
        # outlived the command until Python's full collection, which runs only once such garbage is a quarter of
        # the agent's long-lived objects. The agent's memory rose by a ledger a transfer (2.6 MB for 3,000 files)
        # until then, and what was freed late was freed in scattered pieces (issue 22).
        gc.collect()
        return outcome
