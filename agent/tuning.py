"""How many files at once, how many parts of a file at once, and how big a
part: chosen from what the network check measured and from the files to send,
within safe bounds, each choice with its reason. Then, for a large folder sent
in segments, adjusted between segments from what the last one achieved.

The anchor is FTS3's optimizer (concurrency moved from observed throughput and
success rate). This one starts from a model instead of from a default, so the
first segment is already close:

- one stream carries `single` bytes/s; `streams` of them carried `parallel`.
  If they scaled almost linearly, each stream is held back (by loss or by its
  TCP window), not the path: use many more. Otherwise a few fill the path.
- a small file costs about two round trips plus its bytes on one stream, so
  enough files must be in flight to keep the path busy: rate x time per file /
  file size of them.
- a file at or above rclone's multi-thread cutoff goes as one multipart upload
  whose parallelism is the S3 upload concurrency (facts.md); its parts must be
  many enough for that concurrency and big enough that a part's round trip
  costs little; memory (concurrency x part size x such files at once) is capped.

Between segments (FTS3-like hill climbing, with reasons in the event log):
errors in more than a tenth of the files halve concurrency; throughput that
fell by more than a fifth while nothing else changed means the path got
slower, and fewer parallel transfers suffice (they also load it less); a rise
after an increase means more may help, so it goes up again; otherwise hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from dtn_protocol.options import S3_MAX_PART, S3_MIN_PART, TUNING_BOUNDS
from dtn_protocol.units import MiB, human_bytes, human_speed

# rclone's --multi-thread-cutoff default: files from here on are multipart with upload concurrency.
MULTIPART_CUTOFF = 256 * MiB
MIN_TRANSFERS, MAX_TRANSFERS = 4, 128
MIN_CONCURRENCY, MAX_CONCURRENCY = 4, 64
MIN_CHUNK, MAX_CHUNK = S3_MIN_PART, 64 * MiB
# At most this much memory in upload buffers (concurrency x chunk x multipart files at once).
MEMORY_BUDGET = 1024 * MiB
# Folders with at least this many files go in segments, so the choice can be corrected on the way.
SEGMENT_MIN_FILES = 200
SEGMENTS = 8
SEGMENT_MIN_SIZE = 50
SEGMENT_WAVES = 10
# A segment under this share of the network check's predicted rate, while more at once helps (or has not been
# tried), doubles the files at once: the probe's streams carried more than these, so the path can.
SHORT_OF_PREDICTION = 0.6
# A small file's work besides its round trips and its bytes (request, TLS records, the S3 server's write):
# on the bench's clean 2 ms link 4 files at once moved 311 files/s of 64 KiB, 12.9 ms a file each.
PER_FILE_OVERHEAD_S = 0.006
# Files in flight beyond what the model needs: too few leave the path idle (on the bench's clean link 4 at
# once carried 20.4 of 24.1 MB/s, the 10-13 that twice the model gave 21.2, 16 carried 24.7), too many cost
# a little memory.
FILES_IN_FLIGHT_HEADROOM = 3.0


@dataclass(frozen=True)
class FileMix:
    count: int
    total_bytes: int
    large_count: int
    large_bytes: int
    largest: int

    @classmethod
    def of(cls, sizes) -> "FileMix":
        sizes = list(sizes)
        large = [s for s in sizes if s >= MULTIPART_CUTOFF]
        return cls(len(sizes), sum(sizes), len(large), sum(large), max(sizes, default=0))

    @classmethod
    def uniform(cls, count: int, total_bytes: int) -> "FileMix":
        """`count` files of equal size: what a check asked for a size and a count assumes."""
        large = total_bytes / count >= MULTIPART_CUTOFF
        return cls(count, total_bytes, count if large else 0, total_bytes if large else 0, total_bytes // count)

    @property
    def small_count(self) -> int:
        return self.count - self.large_count

    @property
    def small_bytes(self) -> int:
        return self.total_bytes - self.large_bytes


@dataclass(frozen=True)
class Measured:
    """What the network check found, in the units the model needs."""

    rtt_s: float
    single: float   # bytes/s of one stream
    parallel: float  # bytes/s of `streams` streams
    streams: int
    lossy: bool = False

    @classmethod
    def from_report(cls, report: dict | None) -> "Measured | None":
        if not report or not report.get("probe") or not report.get("rtt_ms"):
            return None
        probe = report["probe"]
        if not probe.get("single_stream_bytes_per_s"):
            return None
        return cls(rtt_s=max(report["rtt_ms"]["median"] / 1000, 1e-4), single=probe["single_stream_bytes_per_s"],
                   parallel=probe["parallel_bytes_per_s"], streams=probe["streams"], lossy=bool(report.get("lossy")))

    @property
    def held_back(self) -> bool:
        # Under loss one stream's figure is noisy (seen on the bed: 0.4 to 1.3 MB/s on the same link), so
        # the check's own loss finding counts too.
        return self.streams > 1 and (self.lossy or scales_with_streams(self.single, self.parallel, self.streams))

    @property
    def link(self) -> float:
        """What the path can carry, as far as the probe shows: beyond what held-back streams
        tried it is unknown, so it is taken to scale a while longer."""
        return self.parallel * 4 if self.held_back else max(self.single, self.parallel)

    def per_file(self, size: float) -> float:
        """Seconds one file of `size` bytes takes on one stream: two round trips, its bytes, the work."""
        return 2 * self.rtt_s + size / max(self.single, 1) + PER_FILE_OVERHEAD_S


def scales_with_streams(single: float, parallel: float, streams: int) -> bool:
    """Parallel streams that carried at least half-linearly more than one: each stream is held back
    (by loss or by its window), not the path."""
    return streams > 1 and single > 0 and parallel >= 0.5 * streams * single


@dataclass(frozen=True)
class Choice:
    transfers: int
    checkers: int
    upload_concurrency: int
    chunk_size: int
    multipart_cutoff: int
    reasons: tuple[str, ...] = ()
    overridden: tuple[str, ...] = ()
    predicted_bytes_per_s: float | None = None
    predicted_seconds: float | None = None

    def job_config(self) -> dict:
        """rclone's global options for the job (`_config`)."""
        return {"Transfers": self.transfers, "Checkers": self.checkers,
                # Multipart uploads of big files: rclone takes the larger of these and the backend's concurrency.
                "MultiThreadStreams": self.upload_concurrency, "MultiThreadCutoff": self.multipart_cutoff,
                # Largest first: a big file starts with the job and runs beside the small ones instead of
                # being the job's long tail alone (a segment, a folder, ends with small files in flight).
                "OrderBy": "size,desc"}

    def remote_params(self) -> dict:
        """The S3 remote's own options."""
        return {"upload_concurrency": str(self.upload_concurrency), "chunk_size": f"{self.chunk_size // MiB}Mi",
                "upload_cutoff": f"{min(self.multipart_cutoff, S3_MAX_PART) // MiB}Mi"}

    def describe(self) -> str:
        return (f"{self.transfers} files at once, {self.checkers} checkers, {self.upload_concurrency} parts at once"
                f" of {self.chunk_size // MiB} MiB for files from {self.multipart_cutoff // MiB} MiB")

    def as_dict(self) -> dict:
        return {"transfers": self.transfers, "checkers": self.checkers, "upload_concurrency": self.upload_concurrency,
                "chunk_size": self.chunk_size, "multipart_cutoff": self.multipart_cutoff,
                "reasons": list(self.reasons), "overridden": list(self.overridden),
                "predicted_bytes_per_s": self.predicted_bytes_per_s, "predicted_seconds": self.predicted_seconds}


def _clamp(value, low, high):
    return max(low, min(high, value))


def choose(measured: Measured | None, mix: FileMix, overrides: dict | None = None) -> Choice:
    overrides = overrides or {}
    reasons: list[str] = []
    if measured is None:
        reasons.append("no throughput probe: rclone's defaults")
        choice = Choice(transfers=4, checkers=8, upload_concurrency=4, chunk_size=MIN_CHUNK,
                        multipart_cutoff=MULTIPART_CUTOFF, reasons=())
    else:
        m = measured
        link = m.link
        if m.held_back:
            # Each stream is held back: throughput follows the number of connections.
            streams = MAX_CONCURRENCY
            reasons.append(f"{m.streams} streams carried {m.parallel / max(m.single, 1):.1f}x one stream: each is held"
                           f" back ({'by loss' if m.lossy else 'by loss or its window'}), so many connections")
        else:
            streams = _clamp(math.ceil(1.5 * link / max(m.single, 1)), MIN_CONCURRENCY, MAX_CONCURRENCY)
            reasons.append(f"one stream carried {m.single / max(link, 1) * 100:.0f}% of the path's"
                           f" {human_speed(link)}: {streams} streams fill it")
        transfers = MIN_TRANSFERS
        if mix.small_count:
            avg = max(mix.small_bytes / mix.small_count, 1)
            # Little's law: files in flight = time one file takes / time the path needs per file,
            # with headroom, as the model's per-file time is a floor.
            per_file = m.per_file(avg)
            needed = math.ceil(FILES_IN_FLIGHT_HEADROOM * per_file / max(avg / max(link, 1), 1e-6))
            if m.held_back:
                # Slow connections: a small file's losses cost timeouts, so many more in flight.
                needed = max(needed, 2 * streams)
            transfers = _clamp(needed, MIN_TRANSFERS, MAX_TRANSFERS)
            reasons.append(f"{mix.small_count} files of {avg / 1024:.0f} KiB on average take ~{per_file * 1000:.0f} ms"
                           f" each at {m.rtt_s * 1000:.0f} ms RTT: {transfers} at once keep the path busy")
        concurrency, chunk = MIN_CONCURRENCY, MIN_CHUNK
        cutoff = MULTIPART_CUTOFF
        if m.held_back and mix.largest >= 32 * MiB:
            # Held-back streams: a 100 MiB file in one PUT would crawl on one connection.
            cutoff = 32 * MiB
            reasons.append("files from 32 MiB go in parallel parts, as one stream carries little")
        big = [mix.largest] if mix.largest >= cutoff else []
        if big:
            concurrency = _clamp(streams, MIN_CONCURRENCY, MAX_CONCURRENCY)
            # Enough parts for the concurrency several times over, each big enough to amortise its round trip.
            by_parts = mix.largest / (concurrency * 4)
            by_rtt = m.single * m.rtt_s * 8
            chunk = _clamp(max(by_parts, by_rtt), MIN_CHUNK, MAX_CHUNK)
            chunk = int(math.ceil(chunk / MiB) * MiB)
            at_once = max(1, min(transfers, mix.large_count or 1))
            while at_once * concurrency * chunk > MEMORY_BUDGET and chunk > MIN_CHUNK:
                chunk = max(MIN_CHUNK, chunk - MiB * max(1, chunk // MiB // 4))
            while at_once * concurrency * chunk > MEMORY_BUDGET and concurrency > MIN_CONCURRENCY:
                concurrency -= 1
            reasons.append(f"big files go in {concurrency} parts at once of {chunk // MiB} MiB")
        transfers = min(transfers, max(mix.count, MIN_TRANSFERS))
        checkers = _clamp(transfers, 8, 64)
        choice = Choice(transfers=transfers, checkers=checkers, upload_concurrency=concurrency, chunk_size=chunk,
                        multipart_cutoff=cutoff)
    choice, overridden = apply_overrides(choice, overrides)
    choice = replace(choice, reasons=tuple(reasons), overridden=tuple(overridden))
    return predict(choice, measured, mix)


def apply_overrides(choice: Choice, overrides: dict) -> tuple[Choice, list[str]]:
    changes, named = {}, []
    for name, (low, high) in TUNING_BOUNDS.items():
        value = overrides.get(name)
        if value is None:
            continue
        changes[name] = _clamp(int(value), low, high)
        named.append(name)
    return replace(choice, **changes), named


def predict(choice: Choice, measured: Measured | None, mix: FileMix) -> Choice:
    if measured is None or not mix.count:
        return choice
    m = measured
    link = m.link
    small_time = 0.0
    if mix.small_count:
        avg = max(mix.small_bytes / mix.small_count, 1)
        per_file = m.per_file(avg)
        by_latency = mix.small_count * per_file / choice.transfers
        by_rate = mix.small_bytes / min(link, choice.transfers * m.single)
        small_time = max(by_latency, by_rate)
    large_time = 0.0
    if mix.large_count:
        streams = choice.upload_concurrency * max(1, min(choice.transfers, mix.large_count))
        large_time = mix.large_bytes / min(link, streams * m.single)
    seconds = small_time + large_time + 1.0
    return replace(choice, predicted_seconds=round(seconds, 1),
                   predicted_bytes_per_s=round(mix.total_bytes / seconds, 1))


# --- between segments --------------------------------------------------------------------------

@dataclass
class SegmentResult:
    files: int
    bytes: int
    seconds: float
    errors: int

    @property
    def rate(self) -> float:
        return self.bytes / self.seconds if self.seconds > 0 else 0.0

    @property
    def average(self) -> float:
        return self.bytes / self.files if self.files else 0.0


def _comparable(a: SegmentResult, b: SegmentResult) -> bool:
    """Segments whose files' average sizes are within 2x of each other."""
    low, high = sorted((a.average, b.average))
    return low > 0 and high <= 2 * low


@dataclass
class Optimizer:
    """FTS3-style: move the number of parallel transfers from what the last segment achieved."""

    choice: Choice
    locked: bool = False  # the user set `transfers`: leave it alone
    history: list[tuple[int, SegmentResult]] = field(default_factory=list)

    def next(self, result: SegmentResult) -> tuple[Choice, str]:
        current = self.choice.transfers
        self.history.append((current, result))
        if self.locked:
            return self.choice, f"transfers stay at {current}, as the user set them"
        if result.files and result.errors > result.files / 10:
            return self._move(max(MIN_TRANSFERS, current // 2),
                              f"{result.errors} of {result.files} files failed in the last segment: fewer at once")
        predicted = self.choice.predicted_bytes_per_s
        short = bool(predicted) and result.rate < SHORT_OF_PREDICTION * predicted
        short_words = (f", under {SHORT_OF_PREDICTION:.0%} of the {human_speed(predicted)} the network check"
                       " predicted: twice as many at once" if short else "")
        if len(self.history) < 2:
            # One segment says nothing about the trend: try a step up, as FTS3 probes; a big one when the
            # segment fell far short of what the probe measured, which may have met the path before its losses.
            return self._move(min(MAX_TRANSFERS, 2 * current if short else max(current + 1, int(current * 1.25))),
                              f"first segment ran at {human_speed(result.rate)} with {current} at once"
                              + (short_words or "; trying a few more"))
        previous_transfers, previous = self.history[-2]
        if not _comparable(result, previous):
            # Small files move fewer bytes a second than big ones on the same path: the bytes/s of segments
            # of unlike files say nothing about the path (a tree's 668 small files after 50 big ones).
            return self._move(current, f"the last segment's files averaged {human_bytes(result.average)}, the ones"
                              f" before {human_bytes(previous.average)}: their rates do not compare; holding at {current}")
        change = (result.rate - previous.rate) / previous.rate if previous.rate > 0 else 0.0
        words = (f"the last segment ran at {human_speed(result.rate)} with {current} at once, the one before at"
                 f" {human_speed(previous.rate)} with {previous_transfers}")
        if change < -0.2:
            # A small step up cannot explain a big fall: that is the path.
            if current > previous_transfers and change > -0.5:
                return self._move(previous_transfers, f"{words}: more at once did not help; back to"
                                  f" {previous_transfers}")
            # Same or fewer transfers and still slower: the path got slower.
            return self._move(max(MIN_TRANSFERS, math.ceil(current * max(0.5, 1 + change))),
                              f"{words}: throughput fell by {-change * 100:.0f}%, the path got slower; fewer"
                              " transfers at once fill it and load it less")
        if change > 0.2:
            return self._move(min(MAX_TRANSFERS, 2 * current if short else max(current + 1, int(current * 1.5))),
                              f"{words}: throughput rose by {change * 100:.0f}%"
                              + (short_words or "; more at once may carry more"))
        return self._move(current, f"{words}: about the same; holding at {current}")

    def _move(self, transfers: int, why: str) -> tuple[Choice, str]:
        self.choice = replace(self.choice, transfers=transfers, checkers=_clamp(transfers, 8, 64))
        return self.choice, why


def segments(names: list[str], sizes: list[int], transfers: int = MIN_TRANSFERS) -> list[list[str]]:
    """A folder's files in about SEGMENTS groups of similar bytes, in listing order. Each segment holds at
    least SEGMENT_WAVES times the files sent at once: a segment ends with its last files in flight and the
    path part idle, and with 128 at once a segment of 250 files spent half its time so (the bench's lossy
    link, 2,000 files in 8 segments). Fewer files than that: one job, no segments."""
    count = len(names)
    if count < SEGMENT_MIN_FILES:
        return [names]
    parts = min(SEGMENTS, max(1, count // max(SEGMENT_MIN_SIZE, SEGMENT_WAVES * transfers)))
    target = sum(sizes) / parts
    out, current, filled = [], [], 0
    for name, size in zip(names, sizes):
        current.append(name)
        filled += size
        if filled >= target and len(current) >= SEGMENT_MIN_SIZE and len(out) < parts - 1:
            out.append(current)
            current, filled = [], 0
    if current:
        out.append(current)
    return out
