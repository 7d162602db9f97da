"""Issue 20's first step: the two designs for resuming inside a large file, measured on this machine
before one is chosen (docs/agent.md, "Resume inside a large file: the two designs measured").

    .venv/bin/python -m bench.resume_designs [--size-mib 1024] [--quick]

On the loopback, against one `rclone serve s3` over TLS with a key (tests/harness's S3Server, the receiver's
flags), for one random file of --size-mib:

- A, the sender's own multipart upload through the SDK the agent already uses (minio, pinned certificate),
  as its own process (bench/resume_upload.py): full uploads at 16/64 MiB parts × 4/8/16 in parallel; the
  uploader SIGKILLed at ~50% and started again (ListParts with the kept upload ID, only the missing parts
  sent, Complete); serve s3 restarted mid-file; an upload killed and aborted (what stays in the folder).
- B, parts as objects: the file pre-split into 64 MiB part files (a stand-in for byte ranges the agent would
  serve; it costs an extra local write the product would not make), copied by `rclone rcd` (sync/copy),
  then joined and hashed at the receiver; rcd SIGKILLed at ~50% and the copy run again.
- C, today's path: `rclone rcd` operations/copyfile of the single file, multi-thread parts; killed at ~50%
  and run again.

~50% and every "read" are counted at the receiver: the bytes its sockets received, by the kernel's count
(tests/harness/received.Received), never the client's counters; serve s3's rchar and wchar are shown beside them.
Figures land in bench/results/resume-designs.json. Needs `ss` (iproute2) and root for its socket-destroy events.

    resume_upload.py  design A's uploader (a process of its own, so it can be killed)
    resume_world.py   the receiver, the rcd, the uploader process, the kill at ~50%
    resume_cases.py   the cases"""

from __future__ import annotations

import argparse
import sys
import time

from bench import report
from bench.resume_cases import parts_as_objects, rclone_single, sdk_abort, sdk_full, sdk_kill_resume, sdk_server_restart
from bench.resume_world import Receiver
from tests.harness import MiB, Scratch, sha256, write_random

# (part MiB, parts in parallel) for design A's full uploads.
SDK_GRID = {"full": [(16, 4), (16, 8), (16, 16), (64, 4), (64, 8)], "quick": [(16, 8), (64, 4)]}
# Killed at ~50% and resumed: what is lost is at most the parts in flight (part × parallel), so both sizes.
SDK_KILL = {"full": [(16, 8), (64, 8)], "quick": [(16, 8)]}
# Design B's part size and rclone transfers (the last one also killed); C's streams and part size (the
# tuning's range, agent/tuning.py; the first one also killed).
PARTS = {"full": [(64, 4), (16, 8)], "quick": [(16, 8)]}
SINGLE = {"full": [(8, 64), (4, 16)], "quick": [(8, 64)]}


def run(size_mib: int, quick: bool) -> dict:
    scratch = Scratch("dtn-resume-bench-")
    rows, started = [], time.monotonic()
    try:
        src = write_random(scratch / "send" / "data.bin", size_mib * MiB)
        digest = sha256(src)
        rx = Receiver(scratch.path)
        try:
            def add(row):
                rows.append(row)
                print(f"  {row['case']}: {_brief(row)}", flush=True)

            grid = "quick" if quick else "full"
            size = size_mib * MiB
            for part, parallel in SDK_GRID[grid]:
                add(sdk_full(rx, src, digest, part, parallel))
            # The receiver's reads per file byte in a clean run of each design (TLS framing; serve s3 may read a
            # body twice): ~50% and a restart's share are then in the file's own bytes.
            a_per_byte = next(r["read_parts_phase"] for r in reversed(rows) if r["ok"]) / size
            for part, parallel in SDK_KILL[grid]:
                add(sdk_kill_resume(rx, src, digest, part, parallel, a_per_byte))
            add(sdk_server_restart(rx, src, *SDK_KILL[grid][0]))
            add(sdk_abort(rx, src, *SDK_KILL[grid][0]))
            for part, transfers in PARTS[grid]:
                add(parts_as_objects(rx, src, digest, scratch.path, part, transfers))
            add(parts_as_objects(rx, src, digest, scratch.path, *PARTS[grid][-1], _per_byte(rows, "B", size)))
            for streams, chunk in SINGLE[grid]:
                add(rclone_single(rx, src, digest, streams, chunk))
            add(rclone_single(rx, src, digest, *SINGLE[grid][0], _per_byte(rows, "C", size)))
        finally:
            rx.stop()
    finally:
        scratch.remove()
    return {"size_bytes": size_mib * MiB, "seconds": time.monotonic() - started, "rows": rows}


def _per_byte(rows: list[dict], design: str, size: int) -> float:
    """The receiver's bytes received per file byte in the last clean run of the design (1.0 if none ran)."""
    clean = [r for r in rows if r["design"] == design and r.get("ok") and r.get("read_total")]
    return clean[-1]["read_total"] / size if clean else 1.0


def _brief(row: dict) -> str:
    keys = ("ok", "seconds", "mb_per_s", "restart_fraction", "identical", "during", "resume", "left_count",
            "left_after_abort_count", "left_after_kill", "error")
    return ", ".join(f"{k}={report.fmt(row[k])}" for k in keys if row.get(k) is not None)


def _mib(value) -> float | None:
    return value / MiB if isinstance(value, (int, float)) else None


def _ratio(value, size: int) -> float | None:
    return value / size if isinstance(value, (int, float)) else None


def _what_happened(row: dict) -> str:
    if "resume" in row:
        said = "NoSuchUpload" if "NoSuchUpload" in row["resume"] else row["resume"][:80]
        return (f"the running upload: {row['during'][:60]}; started again: {said}; left in the folder: "
                f"{row['left_count']} file(s), {row['left_bytes'] / MiB:,.0f} MiB")
    return (f"abort: {row['abort']}; left in the folder before it: {row['left_before_abort']} file(s), "
            f"after it: {row['left_after_abort_count']}")


def tables(result: dict) -> str:
    size = result["size_bytes"]
    speed = [[r["case"], r["seconds"], r["mb_per_s"], _mib(r.get("read_total")), _ratio(r.get("receiver_rchar"), size),
              _mib(r.get("receiver_written")),
              _mib(r.get("receiver_peak_rss")), "yes" if r.get("identical") else "NO",
              len(r.get("left_after_success", r.get("left_after_join", [])))]
             for r in result["rows"] if "mb_per_s" in r and "restart_fraction" not in r]
    restart = [[r["case"], r.get("per_byte"), _mib(r.get("read_before_kill")),
                _mib(r.get("read_restart_parts_phase", r.get("read_restart_total"))),
                f"{r['restart_fraction'] * 100:.0f}%" if r.get("restart_fraction") is not None else "—",
                "yes" if r.get("identical") else "NO"]
               for r in result["rows"] if "restart_fraction" in r]
    other = [[r["case"], _what_happened(r)] for r in result["rows"] if "mb_per_s" not in r and "restart_fraction" not in r]
    return "\n\n".join([
        f"File of {size // MiB} MiB on the loopback, TLS; every 'read' is bytes received by the receiver's sockets"
        " (the kernel's count); 'rx reads/byte' is that per file byte in a clean run of the design.",
        report.table(["full copy", "seconds", "MB/s", "rx received MiB", "rx rchar/byte", "rx MiB written", "rx peak RSS MiB", "identical",
                      "left behind"], speed),
        report.table(["killed at ~50%, started again", "rx reads/byte", "MiB read before kill", "MiB read by restart",
                      "restart / file", "identical"], restart),
        report.table(["other", "what happened"], other)])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.resume_designs", description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--quick", action="store_true", help="fewer grid points (checks the harness)")
    args = parser.parse_args(argv)
    machine = report.machine()
    result = run(args.size_mib, args.quick)
    print()
    print(tables(result))
    path = report.write("resume-designs" + ("-quick" if args.quick else ""),
                        {"machine": machine, "load_after": report.machine()["load_before"], **result})
    print(f"\n{result['seconds']:.0f} s in all; figures in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
