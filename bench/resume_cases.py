"""The cases of bench/resume_designs.py (issue 20), each one run against the loopback receiver of
bench/resume_world.py and handed back as a plain dict:

- A, the sender's own multipart upload through the SDK (bench/resume_upload.py as a process): a full upload;
  killed at ~50% and resumed through ListParts; serve s3 restarted mid-file; an upload aborted.
- B, parts as objects: the file pre-split into part files, copied by rclone rcd (sync/copy), joined and hashed
  at the receiver; rcd killed at ~50% and the copy run again.
- C, today's path: rclone rcd's operations/copyfile of the single file (multi-thread parts); killed at ~50% and
  run again.

"Read" is always the bytes the receiver's sockets received (tests/harness/received.Received) over the span named;
"receiver_rchar" is serve s3's own read count beside it."""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from pathlib import Path

from bench.resume_world import Rcd, Receiver, Uploader, kill_at, same_file
from dtn_protocol.units import MiB
from tests.harness import wait_for

TIMEOUT = 300


def _rate(size: int, seconds: float) -> float:
    return size / seconds / 1e6 if seconds > 0 else float("nan")


def _temp(files: list[str], final: str | None = None) -> list[str]:
    """What in the receive folder is not a landed object: serve s3's multipart parts, rclone's partials."""
    return [f for f in files if f != final]


# --- A: the SDK's multipart upload ----------------------------------------------------------------------------


def sdk_full(rx: Receiver, src: Path, digest: str, part_mib: int, parallel: int) -> dict:
    key = f"a-{part_mib}-{parallel}-{secrets.token_hex(2)}.bin"
    mark, start, rchar = rx.mark(), rx.read(), rx.rchar()
    started = time.monotonic()
    up = Uploader(rx, src, key, part_mib, parallel)
    up.start()
    out = up.finish(TIMEOUT)
    seconds = time.monotonic() - started
    total = rx.read() - start
    parts_read = rx.received.at(out["parts_done_at"]) - start if "parts_done_at" in out else None
    final = f"{rx.bucket}/{key}"
    row = {"case": f"A sdk {part_mib} MiB × {parallel}", "design": "A", "part_mib": part_mib, "parallel": parallel,
           "ok": "error" not in out, "error": out.get("error"), "seconds": seconds, "mb_per_s": _rate(src.stat().st_size, seconds),
           "read_parts_phase": parts_read, "read_total": total, "receiver_rchar": rx.rchar() - rchar,
           "identical": same_file(rx.s3.root / final, digest),
           "left_after_success": _temp(rx.files(), final), **rx.since(mark)}
    rx.clear()
    return row


def sdk_kill_resume(rx: Receiver, src: Path, digest: str, part_mib: int, parallel: int, per_byte: float) -> dict:
    """`per_byte`: the receiver's reads per byte of the file in a clean run of this design, so that ~50% and
    the restart's share are in the file's bytes whatever the server's own overhead."""
    size = src.stat().st_size
    key = f"ak-{secrets.token_hex(2)}.bin"
    up = Uploader(rx, src, key, part_mib, parallel)
    first_start = rx.read()
    started = time.monotonic()
    killed = kill_at(up.start(), rx, first_start, int(per_byte * size / 2), TIMEOUT)
    first_read = rx.read() - first_start
    restart_start = rx.read()
    up.start()
    out = up.finish(TIMEOUT)
    seconds = time.monotonic() - started
    total = rx.read() - restart_start
    parts_read = rx.received.at(out["parts_done_at"]) - restart_start if "parts_done_at" in out else None
    final = f"{rx.bucket}/{key}"
    row = {"case": f"A sdk {part_mib} MiB × {parallel}, killed at 50%, resumed", "design": "A", "killed": killed,
           "ok": "error" not in out, "error": out.get("error"), "seconds": seconds, "read_before_kill": first_read,
           "read_restart_parts_phase": parts_read, "read_restart_total": total, "per_byte": per_byte,
           "restart_fraction": parts_read / (per_byte * size) if parts_read is not None else None,
           "listed_parts": out.get("listed_parts"), "sent_parts": out.get("sent_parts"),
           "identical": same_file(rx.s3.root / final, digest), "left_after_success": _temp(rx.files(), final)}
    rx.clear()
    return row


def sdk_server_restart(rx: Receiver, src: Path, part_mib: int, parallel: int) -> dict:
    """serve s3 restarted mid-file while the uploader runs; then the uploader started again with its state."""
    size = src.stat().st_size
    key = f"ar-{secrets.token_hex(2)}.bin"
    up = Uploader(rx, src, key, part_mib, parallel)
    process = up.start()
    start = rx.read()
    wait_for(lambda: process.poll() is not None or rx.read() - start >= size // 2, TIMEOUT, "half the file", 0.02)
    rx.restart()
    during = up.finish(TIMEOUT)
    left_after_restart = rx.files()
    up.start()
    after = up.finish(TIMEOUT)
    row = {"case": "A sdk, serve s3 restarted at 50%", "design": "A", "during": during.get("error", "finished"),
           "resume": after.get("error", "finished"), "left_in_folder": left_after_restart[:8],
           "left_count": len(left_after_restart), "left_bytes": _bytes(rx, left_after_restart)}
    up.state.unlink(missing_ok=True)
    rx.clear()
    return row


def sdk_abort(rx: Receiver, src: Path, part_mib: int, parallel: int) -> dict:
    size = src.stat().st_size
    key = f"aa-{secrets.token_hex(2)}.bin"
    up = Uploader(rx, src, key, part_mib, parallel)
    kill_at(up.start(), rx, rx.read(), size // 2, TIMEOUT)
    time.sleep(1.5)  # past serve s3's directory cache
    before = rx.files()
    up.start("--abort")
    out = up.finish(60)
    time.sleep(1.5)  # past serve s3's directory cache
    after = rx.files()
    row = {"case": "A sdk killed at 50%, then AbortMultipartUpload", "design": "A", "abort": out.get("error", "ok"),
           "left_before_abort": len(before), "left_before_abort_bytes": _bytes(rx, before),
           "left_after_abort": after[:8], "left_after_abort_count": len(after)}
    up.state.unlink(missing_ok=True)
    rx.clear()
    return row


def _bytes(rx: Receiver, files: list[str]) -> int:
    return sum((rx.s3.root / f).stat().st_size for f in files if (rx.s3.root / f).exists())


# --- B: parts as objects --------------------------------------------------------------------------------------


def split(src: Path, into: Path, part: int) -> tuple[list[Path], float]:
    """The stand-in for ranges served by the agent: the parts written to local disk (an extra local write
    of the whole file the product would not make)."""
    into.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    paths = []
    with open(src, "rb") as handle:
        number = 0
        while chunk := handle.read(part):
            number += 1
            path = into / f"part-{number:05d}"
            path.write_bytes(chunk)
            paths.append(path)
    return paths, time.monotonic() - started


def join(folder: Path, final: Path) -> tuple[str, float]:
    """The receiver's join: parts appended in order into the plain file, hashed as they are read, then removed."""
    started = time.monotonic()
    digest = hashlib.sha256()
    with open(final, "wb") as out:
        for part in sorted(folder.iterdir()):
            with open(part, "rb") as handle:
                while block := handle.read(8 * MiB):
                    digest.update(block)
                    out.write(block)
            part.unlink()
    folder.rmdir()
    return digest.hexdigest(), time.monotonic() - started


def parts_as_objects(rx: Receiver, src: Path, digest: str, scratch: Path, part_mib: int, transfers: int,
                     per_byte: float | None = None) -> dict:
    """`per_byte` given: rcd killed at ~50% of the file (in the receiver's reads per file byte of a clean run)."""
    kill = per_byte is not None
    size = src.stat().st_size
    name = f"b-{secrets.token_hex(2)}"
    paths, split_s = split(src, scratch / name, part_mib * MiB)
    rcd = Rcd(rx.logs)
    dst = rx.destination(name).remote("", rx.tls.cert_path)
    # One PUT per part (under the cutoff): a part is then whole at the receiver or not there.
    dst["upload_cutoff"] = f"{max(part_mib * 2, 200)}Mi"
    params = {"srcFs": str(scratch / name), "dstFs": dst, "_config": {"Transfers": transfers}}
    start = rx.read()
    started = time.monotonic()
    first_read = killed = None
    try:
        if kill:
            rcd.start_job("sync/copy", **params)
            killed = kill_at(rcd.process, rx, start, int(per_byte * size / 2), TIMEOUT)
            first_read = rx.read() - start
            rcd.stop()
            rcd = Rcd(rx.logs)
        restart_start, mark, rchar = rx.read(), rx.mark(), rx.rchar()
        status = rcd.run("sync/copy", TIMEOUT, **params)
    finally:
        rcd.stop()
    copy_s = time.monotonic() - started
    restart_read = rx.read() - restart_start
    extras = {**rx.since(mark), "receiver_rchar": rx.rchar() - rchar}
    left_before_join = _temp(rx.files())
    landed_parts = sum(1 for f in left_before_join if f.startswith(f"{rx.bucket}/{name}/part-"))
    final = rx.bucket_dir / f"{name}.bin"
    joined, join_s = join(rx.bucket_dir / name, final)
    for path in paths:
        path.unlink()
    (scratch / name).rmdir()
    row = {"case": f"B parts as objects {part_mib} MiB × {transfers}" + (", killed at 50%, copied again" if kill else ""),
           "design": "B", "part_mib": part_mib, "transfers": transfers, "ok": status.get("success", False),
           "error": status.get("error") or None, "split_s": split_s, "copy_s": copy_s, "join_s": join_s,
           "seconds": copy_s + join_s, "mb_per_s": _rate(size, copy_s + join_s), "mb_per_s_copy": _rate(size, copy_s),
           "identical": joined == digest and same_file(final, digest), "parts": len(paths),
           "parts_landed": landed_parts, "extra_receiver_bytes": _bytes(rx, left_before_join),
           "extra_receiver_writes": size, "extra_sender_writes_stand_in": size,
           "left_after_join": _temp(rx.files(), f"{rx.bucket}/{name}.bin"), **extras}
    if kill:
        row.update(killed=killed, read_before_kill=first_read, read_restart_total=restart_read, per_byte=per_byte,
                   restart_fraction=restart_read / (per_byte * size))
    else:
        row["read_total"] = restart_read
    rx.clear()
    return row


# --- C: rclone's own copy of the single file (today) ---------------------------------------------------------


def rclone_single(rx: Receiver, src: Path, digest: str, streams: int, chunk_mib: int,
                  per_byte: float | None = None) -> dict:
    kill = per_byte is not None
    size = src.stat().st_size
    name = f"c-{secrets.token_hex(2)}"
    # The product's job settings for a big file (agent/tuning.py's Choice): parts and streams from the tuning.
    dst = rx.destination(name).remote("", rx.tls.cert_path, {
        "upload_concurrency": str(streams), "chunk_size": f"{chunk_mib}Mi", "upload_cutoff": "200Mi"})
    params = {"srcFs": str(src.parent), "srcRemote": src.name, "dstFs": dst, "dstRemote": src.name,
              "_config": {"MultiThreadStreams": streams, "MultiThreadCutoff": "256Mi", "NoUnicodeNormalization": True}}
    rcd = Rcd(rx.logs)
    start = rx.read()
    started = time.monotonic()
    first_read = killed = left_after_kill = None
    try:
        if kill:
            rcd.start_job("operations/copyfile", **params)
            killed = kill_at(rcd.process, rx, start, int(per_byte * size / 2), TIMEOUT)
            first_read = rx.read() - start
            time.sleep(1.5)  # past serve s3's directory cache
            left_after_kill = _temp(rx.files())
            rcd.stop()
            rcd = Rcd(rx.logs)
        restart_start, mark, rchar = rx.read(), rx.mark(), rx.rchar()
        status = rcd.run("operations/copyfile", TIMEOUT, **params)
    finally:
        rcd.stop()
    seconds = time.monotonic() - started
    restart_read = rx.read() - restart_start
    extras = {**rx.since(mark), "receiver_rchar": rx.rchar() - rchar}
    final = f"{rx.bucket}/{name}/{src.name}"
    row = {"case": f"C rclone copyfile {chunk_mib} MiB × {streams}" + (", killed at 50%, copied again" if kill else ""),
           "design": "C", "ok": status.get("success", False), "error": status.get("error") or None,
           "seconds": seconds, "mb_per_s": _rate(size, seconds), "identical": same_file(rx.s3.root / final, digest),
           "left_after_success": _temp(rx.files(), final), **extras}
    if kill:
        row.update(killed=killed, read_before_kill=first_read, read_restart_total=restart_read, per_byte=per_byte,
                   restart_fraction=restart_read / (per_byte * size), left_after_kill=len(left_after_kill),
                   left_after_kill_bytes=_bytes(rx, left_after_kill))
    else:
        row["read_total"] = restart_read
    rx.clear()
    return row
