"""Design A of issue 20 as a stand-alone process, so the benchmark can SIGKILL it mid-file: one file sent
as an S3 multipart upload through the SDK the agent already uses (minio, with the pinned certificate, the
network check's client), its upload ID and finished parts kept in a state file; started again with that
state it asks the server which parts it holds (ListParts) and sends only the others, then completes.

    python -m bench.resume_upload --state S --file F --endpoint URL --bucket B --key K --ca CERT
        [--part-mib 16] [--parallel 8] [--abort]

Keys come from the environment (BENCH_S3_ACCESS_KEY, BENCH_S3_SECRET_KEY), never argv (`ps` shows argv).
The last line on stdout is one JSON object: what it did."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from agent.sender.multipart import Client
from agent.statefile import write_state
from dtn_protocol.units import MiB

# Each PUT body is read from the file in pieces of this size (pread), so memory stays at parallel × 1 MiB
# whatever the part size: the SDK's own _upload_part takes a part as one bytes object.
READ_PIECE = 1 * MiB


class State:
    """The upload ID and the parts known to have landed, written after each part (atomic rename): what a
    restarted agent would find in its state dir."""

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.Lock()
        data = json.loads(path.read_text()) if path.exists() else {}
        self.upload_id: str | None = data.get("upload_id")
        self.parts: dict[int, str] = {int(k): v for k, v in data.get("parts", {}).items()}

    def save(self) -> None:
        with self.lock:
            write_state(self.path, {"upload_id": self.upload_id, "parts": self.parts})


def pieces(fd: int, offset: int, length: int):
    end = offset + length
    while offset < end:
        data = os.pread(fd, min(READ_PIECE, end - offset), offset)
        if not data:
            raise OSError("the file shrank while it was sent")
        offset += len(data)
        yield data


def upload(args, s3: Client, state: State) -> dict:
    size = args.file.stat().st_size
    part = args.part_mib * MiB
    count = max(1, -(-size // part))
    out = {"resumed": False, "listed_parts": 0, "sent_parts": 0, "sent_bytes": 0}
    if state.upload_id:
        # The server's word, not the state file's: a part the state file missed (killed between the PUT's
        # answer and the save) is not sent twice, and a part the server lost is sent again.
        held = s3.parts(args.key, state.upload_id)
        out.update(resumed=True, listed_parts=len(held))
        state.parts = {n: etag for n, (etag, length) in held.items()
                       if length == min(part, size - (n - 1) * part)}
    else:
        state.upload_id = s3.create(args.key, args.file.stat().st_mtime)
        state.parts = {}
    state.save()
    missing = [n for n in range(1, count + 1) if n not in state.parts]
    fd = os.open(args.file, os.O_RDONLY)
    try:
        def send(number: int) -> None:
            offset = (number - 1) * part
            length = min(part, size - offset)
            etag = s3.put_part(args.key, state.upload_id, number, length, pieces(fd, offset, length))
            with state.lock:
                state.parts[number] = etag
                out["sent_parts"] += 1
                out["sent_bytes"] += length
            state.save()

        with ThreadPoolExecutor(args.parallel) as pool:
            for done in [pool.submit(send, n) for n in missing]:
                done.result()
    finally:
        os.close(fd)
    out["parts_done_at"] = time.time()  # the receiver's counter is read before Complete re-reads the parts
    s3.complete(args.key, state.upload_id, state.parts)
    state.path.unlink(missing_ok=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.resume_upload")
    for name in ("--state", "--file", "--ca"):
        parser.add_argument(name, type=Path, required=True)
    for name in ("--endpoint", "--bucket", "--key"):
        parser.add_argument(name, required=True)
    parser.add_argument("--part-mib", type=int, default=16)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--abort", action="store_true", help="abort the upload in the state file instead")
    args = parser.parse_args(argv)
    # The product's client (agent/sender/multipart.py). A send timeout longer than the product's: with
    # parallel x part at or over serve s3's 256 MiB reorder buffer (cases the product avoids) a part that
    # arrives ahead of its turn waits up to a minute before the server takes or refuses it.
    s3 = Client(args.endpoint, args.bucket, os.environ["BENCH_S3_ACCESS_KEY"], os.environ["BENCH_S3_SECRET_KEY"],
                tls=True, ca_file=args.ca, pool_size=args.parallel + 2, send_timeout=90.0)
    state = State(args.state)
    started = time.time()
    try:
        if args.abort:
            s3.abort(args.key, state.upload_id)
            out = {"aborted": state.upload_id}
        else:
            out = upload(args, s3, state)
    except Exception as exc:  # the benchmark records what the server said (e.g. NoSuchUpload), not a trace
        out = {"error": f"{type(exc).__name__}: {getattr(exc, 'code', '') or ''} {str(exc)[:300]}"}
    out["seconds"] = time.time() - started
    print(json.dumps(out), flush=True)
    return 1 if "error" in out else 0


if __name__ == "__main__":
    sys.exit(main())
