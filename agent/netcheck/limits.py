"""How much a network check may cost, and the share of a transfer its probe may take."""

from __future__ import annotations

from dataclasses import dataclass, replace

from dtn_protocol.units import MiB

# Before a transfer the probe moves at most this share of its bytes, but never less than the minimum
# (fewer bytes say little about a path) in no less than the minimum time.
PROBE_SHARE = 0.03
PROBE_MIN_BYTES = 8 * MiB
PROBE_MIN_SECONDS = 2.0


@dataclass(frozen=True)
class Limits:
    """How much a check may cost. The defaults keep it under ~15 s and ~48 MiB."""

    rtt_samples: int = 5
    connect_timeout: float = 5.0
    probe_seconds: float = 10.0
    probe_max_bytes: int = 48 * MiB
    streams: int = 8
    # Below this the path is called slow (bytes/s): 100 Mbit/s.
    slow_bytes_per_s: float = 100e6 / 8
    # A retransmission share above this, with streams held back, is called lossy.
    lossy_retransmit_ratio: float = 0.001
    # A transfer to an endpoint probed this recently reuses that probe (reachability, TLS, keys and space
    # are checked afresh): back-to-back transfers do not each pay seconds of probing. 0: always probe.
    probe_reuse_seconds: float = 600.0

    def for_transfer(self, total_bytes: int | None, bandwidth_limit: float | None = None) -> "Limits":
        """The probe before a transfer costs a small share of it: a 100 MiB transfer is not preceded by 48 MiB
        of probing (on the bench's clean link the full probe alone was 6-7% of a 1 GiB file's time). Its time
        shrinks with its bytes, as the rate is not known before probing. A user's bandwidth limit keeps it to
        about two seconds at that rate."""
        budget = self.probe_max_bytes
        if total_bytes:
            budget = min(budget, max(PROBE_MIN_BYTES, int(total_bytes * PROBE_SHARE)))
        if bandwidth_limit:
            budget = min(budget, max(256 * 1024, int(2 * bandwidth_limit)))
        if budget >= self.probe_max_bytes:
            return self
        seconds = min(self.probe_seconds, max(PROBE_MIN_SECONDS, self.probe_seconds * budget / self.probe_max_bytes))
        return replace(self, probe_max_bytes=budget, probe_seconds=seconds)
