"""One large file sent as this agent's own S3 multipart upload, so that a stop, a killed agent or an outage
costs only the parts that had not landed (docs/agent.md, "Resume inside a large file"). rclone's s3 backend
cannot resume an upload: here the upload ID is kept in the state dir, and a restart asks the server which
parts it holds (ListParts, the server's word rather than ours) and sends only the others.

The upload runs in threads of its own; the attempt's thread keeps the lease and reads `progress()`."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from agent.netcheck.s3 import MinioS3, error_code, xml_code
from agent.statefile import read_state, write_state
from dtn_protocol.units import MiB

log = logging.getLogger(__name__)

# Each part's body is read from the file in pieces of this size: memory stays at parallel x PIECE whatever
# the part size, and a stop or the bandwidth limit acts between two pieces.
PIECE = 1 * MiB
PART_MIN = 16 * MiB
MAX_PARTS = 10_000  # S3's limit: past ~156 GiB the parts grow beyond PART_MIN
# serve s3 writes an upload as one stream in part order and holds parts that arrive ahead of their turn, up to
# 256 MiB per upload; past that a part waits and, after a minute, gets SlowDown (measured, docs/agent.md).
IN_FLIGHT_MAX = 128 * MiB
PARALLEL_MAX = 8
# Under a bandwidth limit, parts at once share it and all finish late together, so a stop loses every one in
# flight: one part at a time for each this many bytes/s of the limit.
RATE_PER_PART = 25 * MiB
# A part that fails is tried again after these pauses; then the upload fails and the command with it (the
# upload is kept: a restart resumes it).
RETRY_PAUSES = (1.0, 2.0, 4.0, 8.0, 15.0)
# urllib3 sends a request's body under its *connect* timeout: it bounds a send that makes no progress.
SEND_TIMEOUT = 30.0
ANSWER_TIMEOUT = 90.0
STATE_FOLDER = "uploads"


class UploadLost(Exception):
    """The server no longer holds the upload (NoSuchUpload: its S3 server restarted, or expired it)."""


class UploadFailed(Exception):
    """A part failed (after every retry, if `transient`); the message is the server's or the network's word."""

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient


class _Stopped(Exception):
    pass


@dataclass(frozen=True)
class Layout:
    part_size: int
    parallel: int

    @classmethod
    def choose(cls, size: int, chunk_size: int, concurrency: int, rate: float | None = None) -> "Layout":
        part = max(PART_MIN, chunk_size)
        while -(-size // part) > MAX_PARTS:
            part *= 2
        parallel = max(1, min(PARALLEL_MAX, concurrency, IN_FLIGHT_MAX // part))
        if rate:
            parallel = max(1, min(parallel, int(-(-rate // RATE_PER_PART))))
        return cls(part, parallel)

    def count(self, size: int) -> int:
        return max(1, -(-size // self.part_size))

    def length(self, size: int, number: int) -> int:
        return min(self.part_size, size - (number - 1) * self.part_size) if size else 0


def _transient(exc: Exception) -> bool:
    """A failure that may pass: the network's, or the server's 5xx (a refusal will not)."""
    import urllib3.exceptions

    return isinstance(exc, (OSError, urllib3.exceptions.HTTPError)) or getattr(exc, "transient", False)


class Limiter:
    """A bandwidth limit shared by the upload's threads: each piece waits its turn."""

    def __init__(self, rate: float):
        self.rate = rate
        self.lock = threading.Lock()
        self.next_free = time.monotonic()

    def take(self, n: int, stopping: threading.Event) -> None:
        with self.lock:
            now = time.monotonic()
            start = max(self.next_free, now - 0.5)  # at most half a second of credit
            self.next_free = start + n / self.rate
        while (wait := start - time.monotonic()) > 0:
            if stopping.wait(min(wait, 0.2)):
                raise _Stopped()


class UploadState:
    """The upload ID of one file at one destination, in the state dir (0600 in a 0700 folder, written by
    rename): what a restarted agent finds. The parts themselves are the server's to list."""

    def __init__(self, state_dir: Path, identity: str):
        folder = Path(state_dir) / STATE_FOLDER
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = folder / f"{hashlib.sha256(identity.encode()).hexdigest()[:32]}.json"

    def read(self) -> dict:
        return read_state(self.path)

    def write(self, data: dict) -> None:
        write_state(self.path, data)

    def forget(self) -> None:
        self.path.unlink(missing_ok=True)


class Client:
    """The S3 calls of a multipart upload on one bucket: the network check's client (the minio SDK with the
    pinned certificate), with a send timeout for parts."""

    def __init__(self, endpoint: str, bucket: str, access_key: str, secret_key: str, *, tls: bool,
                 ca_file: Path | None, pool_size: int, send_timeout: float = SEND_TIMEOUT):
        s3 = MinioS3(endpoint, bucket, access_key, secret_key, tls=tls, ca_file=ca_file, pool_size=pool_size,
                     timeout=ANSWER_TIMEOUT, connect_timeout=send_timeout)
        self.http, self.minio, self.bucket = s3.http, s3.client, bucket

    def head(self, key: str):
        """The object's size, ETag and metadata; None if there is none."""
        try:
            return self.minio.stat_object(self.bucket, key)
        except Exception as exc:
            if error_code(exc) in ("NoSuchKey", "NotFound", "ResourceNotFound"):
                return None
            raise

    def create(self, key: str, mtime: float) -> str:
        # rclone's own metadata: the receiver's file gets the source's time, and rclone's later comparisons
        # (update_changed) see it.
        return self.minio._create_multipart_upload(self.bucket, key, {"x-amz-meta-mtime": f"{mtime:.9f}"})

    def parts(self, key: str, upload_id: str) -> dict[int, tuple[str, int]]:
        """Every part the server holds for the upload: number -> (ETag, size). UploadLost if it has none."""
        found, marker = {}, None
        while True:
            try:
                result = self.minio._list_parts(self.bucket, key, upload_id, max_parts=1000,
                                                part_number_marker=marker)
            except Exception as exc:
                if error_code(exc) == "NoSuchUpload":
                    raise UploadLost(upload_id) from None
                raise
            for part in result.parts:
                found[part.part_number] = (part.etag.strip('"'), part.size)
            if not result.is_truncated:
                return found
            marker = str(result.next_part_number_marker)

    def check(self, key: str, upload_id: str) -> None:
        """UploadLost if the server no longer holds the upload; nothing if it does or cannot be asked."""
        try:
            self.minio._list_parts(self.bucket, key, upload_id, max_parts=1)
        except Exception as exc:
            if error_code(exc) == "NoSuchUpload":
                raise UploadLost(upload_id) from None

    def put_part(self, key: str, upload_id: str, number: int, length: int, body) -> str:
        """One UploadPart through a presigned URL, its body streamed: the SDK's own takes a part as one bytes."""
        url = self.minio.get_presigned_url("PUT", self.bucket, key,
                                           extra_query_params={"partNumber": str(number), "uploadId": upload_id})
        response = self.http.request("PUT", url, body=body, headers={"Content-Length": str(length)},
                                     preload_content=True)
        if response.status >= 300:
            text = response.data.decode("utf-8", "replace")
            code = xml_code(text)
            if code == "NoSuchUpload":
                raise UploadLost(upload_id)
            # A 5xx (SlowDown among them) may pass; a refusal (4xx) will not.
            raise UploadFailed(f"part {number}: HTTP {response.status} {code or text[:200]}",
                               transient=response.status >= 500)
        return response.headers["ETag"].strip('"')

    def complete(self, key: str, upload_id: str, parts: dict[int, str]) -> None:
        from minio.datatypes import Part

        try:
            self.minio._complete_multipart_upload(self.bucket, key, upload_id,
                                                  [Part(n, parts[n]) for n in sorted(parts)])
        except Exception as exc:
            if error_code(exc) == "NoSuchUpload":
                raise UploadLost(upload_id) from None
            raise

    def abort(self, key: str, upload_id: str) -> None:
        self.minio._abort_multipart_upload(self.bucket, key, upload_id)

    def close(self) -> None:
        self.http.clear()


class Upload:
    """One file to one key: started in the background, watched with `progress()`, stopped with `stop()`.
    `error` says why it failed; an upload that failed or was stopped stays at the receiver for the restart."""

    def __init__(self, client: Client, state: UploadState, *, path: Path, key: str, size: int, mtime: float,
                 layout: Layout, rate: float | None, command_id: str = ""):
        """`command_id`: whose counters the bytes go to (a restarted agent runs the same command again; a
        person's restart is a new command)."""
        self.client, self.state, self.command_id = client, state, command_id
        self.path, self.key, self.size, self.mtime, self.layout = path, key, size, mtime, layout
        self.limiter = Limiter(rate) if rate else None
        self.stopping = threading.Event()  # a person's stop, or the agent's shutdown
        self.halt = threading.Event()  # the parts in flight end: a stop, or a sibling part failed
        self.lock = threading.Lock()
        self.sent = 0  # bytes read into part bodies by this attempt (what moved, parts lost in flight included)
        self.landed = 0  # bytes of parts the server holds
        self.in_flight: dict[int, int] = {}
        self.held_at_start = 0  # bytes the server held when this attempt began (a resume)
        self.restarted_from_zero = ""  # why an upload the state dir named could not be resumed
        self.resumed = False
        # Of the bytes the server holds, how many each command moved (`landed`) or counted as held from before
        # (`resumed`), kept in the state file: so a command run again after a SIGKILL, whose earlier bytes its
        # counters hold already, is not told them twice.
        self.by_command: dict[str, dict[str, int]] = {}
        self.resumed_bytes = 0  # held from before and not yet in this command's counters
        self.retries = 0
        self.done = False
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"upload {self.key}", daemon=True)
        self.thread.start()

    def finished(self) -> bool:
        return self.thread is not None and not self.thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        self.halt.set()
        if self.thread is not None:
            self.thread.join(timeout)

    @property
    def held(self) -> int:
        """Bytes of the file in parts the server acknowledged."""
        with self.lock:
            return self.landed

    def progress(self) -> tuple[int, int]:
        """(bytes moved by this attempt, bytes of the file at the receiver or on their way)."""
        with self.lock:
            return self.sent, min(self.size, self.landed + sum(self.in_flight.values()))

    def _run(self) -> None:
        try:
            self._upload()
            self.done = not self.stopping.is_set()
        except _Stopped:
            pass
        except BaseException as exc:  # the attempt's thread reads it
            self.error = exc
        finally:
            self.client.close()

    def _upload(self) -> None:
        upload_id, held = self._resume()
        for _ in range(3):
            try:
                parts = self._send(upload_id, held)
                if self.stopping.is_set():
                    return
                self.client.complete(self.key, upload_id, parts)
                self.state.forget()
                return
            except UploadLost:
                if self.stopping.is_set():
                    return
                # Its S3 server restarted under us: what it held is gone (serve s3 keeps uploads in memory).
                self.restarted_from_zero = ("the receiver lost the upload (its S3 server restarted):"
                                            " the file is sent again from its start")
                with self.lock:
                    self.landed = 0
                upload_id, held = self._new(), {}
        raise UploadFailed("the receiver lost the upload three times")

    def _resume(self) -> tuple[str, dict[int, str]]:
        saved = self.state.read()
        same = (saved.get("size") == self.size and saved.get("mtime") == self.mtime
                and saved.get("part_size") == self.layout.part_size and saved.get("upload_id"))
        if saved.get("upload_id") and not same:
            self.restarted_from_zero = "the file changed since its upload began: sent again from its start"
            try:
                self.client.abort(self.key, saved["upload_id"])
            except Exception as exc:  # gone already, or unreachable: serve s3 expires it anyway
                log.info("could not abort the old upload of %s: %s", self.key, exc)
        if not same:
            return self._new(), {}
        try:
            listed = self.client.parts(self.key, saved["upload_id"])
        except UploadLost:
            self.restarted_from_zero = ("the receiver no longer holds the upload begun before (its S3 server"
                                        " restarted or expired it): the file is sent again from its start")
            return self._new(), {}
        # A part of the wrong size (cut short) is sent again.
        held = {n: etag for n, (etag, length) in listed.items()
                if 1 <= n <= self.layout.count(self.size) and length == self.layout.length(self.size, n)}
        with self.lock:
            self.landed = self.held_at_start = sum(self.layout.length(self.size, n) for n in held)
            by = saved.get("by_command")
            self.by_command = {k: dict(v) for k, v in by.items() if isinstance(v, dict)} if isinstance(by, dict) else {}
            mine = self.by_command.setdefault(self.command_id, {})
            self.resumed_bytes = max(0, self.held_at_start - int(mine.get("landed", 0)) - int(mine.get("resumed", 0)))
            mine["resumed"] = int(mine.get("resumed", 0)) + self.resumed_bytes
        self._save(saved["upload_id"])
        self.resumed = True
        return saved["upload_id"], held

    def _new(self) -> str:
        upload_id = self.client.create(self.key, self.mtime)
        with self.lock:
            self.by_command, self.resumed_bytes = {}, 0
        self._save(upload_id)
        return upload_id

    def _save(self, upload_id: str) -> None:
        with self.lock:
            data = {"upload_id": upload_id, "key": self.key, "size": self.size, "mtime": self.mtime,
                    "part_size": self.layout.part_size, "by_command": self.by_command}
            self.state.write(data)

    def _send(self, upload_id: str, held: dict[int, str]) -> dict[int, str]:
        parts = dict(held)
        missing = [n for n in range(1, self.layout.count(self.size) + 1) if n not in parts]
        fd = os.open(self.path, os.O_RDONLY)
        try:
            with ThreadPoolExecutor(self.layout.parallel, thread_name_prefix="part") as pool:
                futures = [pool.submit(self._part, upload_id, n, fd) for n in missing]
                try:
                    for future in futures:
                        number, etag = future.result()
                        parts[number] = etag
                except BaseException:
                    self.halt.set()  # the other parts end between two pieces
                    raise
        finally:
            os.close(fd)
            if not self.stopping.is_set():
                self.halt.clear()
        return parts

    def _part(self, upload_id: str, number: int, fd: int) -> tuple[int, str]:
        length = self.layout.length(self.size, number)
        offset = (number - 1) * self.layout.part_size
        for pause in (*RETRY_PAUSES, None):
            if self.halt.is_set():
                raise _Stopped()
            try:
                etag = self.client.put_part(self.key, upload_id, number, length, self._body(number, fd, offset, length))
            except (UploadLost, _Stopped):
                raise
            except Exception as exc:
                if pause is None or not _transient(exc) or self.halt.is_set():
                    raise UploadFailed(str(exc)) from None
                with self.lock:
                    self.retries += 1
                log.info("%s part %d failed (%s); again in %.0f s", self.key, number, exc, pause)
                # A restarted server answers an upload it lost with NoSuchUpload, but it may say so while the
                # body is still being sent and close the connection: the client then sees only a broken pipe.
                self.client.check(self.key, upload_id)
                if self.halt.wait(pause):
                    raise _Stopped() from None
                continue
            finally:
                with self.lock:
                    self.in_flight.pop(number, None)  # landed, cut short or failed: no longer on its way
            with self.lock:
                self.landed += length
                mine = self.by_command.setdefault(self.command_id, {})
                mine["landed"] = int(mine.get("landed", 0)) + length
            self._save(upload_id)
            return number, etag
        raise AssertionError("unreachable")

    def _body(self, number: int, fd: int, offset: int, length: int):
        end = offset + length
        with self.lock:
            self.in_flight[number] = 0
        while offset < end:
            if self.halt.is_set():
                raise _Stopped()
            n = min(PIECE, end - offset)
            if self.limiter is not None:
                self.limiter.take(n, self.halt)
            data = os.pread(fd, n, offset)
            if len(data) != n:
                raise UploadFailed(f"{self.path.name} shrank while it was sent")
            offset += n
            with self.lock:
                self.sent += n
                self.in_flight[number] += n
            yield data
