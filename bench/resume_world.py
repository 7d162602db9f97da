"""What every case of bench/resume_designs.py runs against: one `rclone serve s3` over TLS with a key on
the loopback (tests/harness's S3Server, the receiver's flags), the bytes its sockets received counted by the
kernel (tests/harness's Received; rchar and wchar from /proc beside them), and the runs' shared steps (a
process killed at ~50% as counted at the receiver, leftovers in the receive folder)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import sys
import time
from pathlib import Path

from agent import names
from agent.sender.destination import Destination
from agent.tls import ensure_certificate
from bench.contenders import peak_rss_bytes, reset_peak_rss
from tests.harness import LOCAL, Received, S3Server, Sidecar, new_keys, sha256, wait_for


def io_counter(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {name} for {pid}")


def rchar(pid: int) -> int:
    """Bytes the process got from read()-like calls: on the receiver, the request bodies from its sockets
    (TLS records, so a little over the payload) and any file it reads itself (CompleteMultipartUpload joining
    the parts). /proc's read_bytes would count only the disk, and the client's own counters are what the
    issue says not to trust."""
    return io_counter(pid, "rchar")


class Receiver:
    bucket = "bench"

    def __init__(self, scratch: Path):
        self.scratch = scratch
        self.logs = scratch / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.tls = ensure_certificate(scratch / "tls", [LOCAL.address])
        access, secret = new_keys()
        self.s3 = S3Server(scratch / "received", access, secret, cert=self.tls.cert_path, key=self.tls.key_path,
                           log_dir=self.logs, dir_cache="1s")
        self.bucket_dir = self.s3.make_bucket(self.bucket)
        self.s3.start()
        self.received = Received(self.s3.port)

    @property
    def pid(self) -> int:
        return self.s3.process.pid

    def read(self) -> int:
        """Bytes received at the receiver so far (its sockets, counted by the kernel)."""
        return self.received.poll()

    def rchar(self) -> int:
        return rchar(self.pid)

    def restart(self) -> None:
        self.s3.restart()

    def mark(self) -> dict:
        """Start of a span for since(): its writes (wchar: parts, temp files, the landed file) and its peak
        memory (VmHWM reset through clear_refs, as bench/contenders does)."""
        reset_peak_rss(self.pid)
        return {"pid": self.pid, "wchar": io_counter(self.pid, "wchar")}

    def since(self, mark: dict) -> dict:
        if mark["pid"] != self.pid:
            return {}
        return {"receiver_written": io_counter(self.pid, "wchar") - mark["wchar"],
                "receiver_peak_rss": peak_rss_bytes(self.pid)}

    def env(self) -> dict:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.scratch),
                "BENCH_S3_ACCESS_KEY": self.s3.access_key, "BENCH_S3_SECRET_KEY": self.s3.secret_key}

    def destination(self, prefix: str) -> Destination:
        """The receiver as a command would name it, so rclone gets the product's own inline remote."""
        return Destination(endpoint=self.s3.endpoint, bucket=self.bucket, prefix=prefix,
                           access_key=self.s3.access_key, secret_key=self.s3.secret_key, tls=True,
                           certificate_pem=self.tls.pem, certificate_sha256=self.tls.sha256.replace(":", "").lower(),
                           keys=names.RCLONE_KEYS)

    def files(self) -> list[str]:
        """Every file in the receive folder (hidden ones too: serve s3's temp parts), relative to it."""
        root = self.s3.root
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    def clear(self) -> None:
        """Empty the bucket between runs (the folder stays: serve s3 caches the tree)."""
        for child in self.bucket_dir.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        for child in self.s3.root.iterdir():
            if child != self.bucket_dir:
                shutil.rmtree(child) if child.is_dir() else child.unlink()

    def stop(self) -> None:
        self.received.stop()
        self.s3.stop()


def kill_at(process, receiver: Receiver, start_read: int, threshold: int, timeout: float) -> bool:
    """SIGKILL `process` once the receiver has read `threshold` bytes since `start_read`; False when it ended
    first."""
    def reached():
        return process.poll() is not None or receiver.read() - start_read >= threshold
    wait_for(reached, timeout, "the receiver to read half the file", 0.02)
    if process.poll() is not None:
        return False
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    return True


def same_file(path: Path, digest: str) -> bool:
    return path.is_file() and sha256(path) == digest


def last_json(log: Path) -> dict:
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {"error": "no result line"}


class Uploader:
    """bench/resume_upload.py as its own process (started by the harness's place, as the product's
    processes are), so that it can be killed like an agent."""

    def __init__(self, receiver: Receiver, source: Path, key: str, part_mib: int, parallel: int):
        self.receiver, self.source, self.key = receiver, source, key
        self.part_mib, self.parallel = part_mib, parallel
        self.state = receiver.scratch / f"upload-{secrets.token_hex(3)}.json"
        self.process = None

    def start(self, *extra: str):
        self.log = self.receiver.logs / f"{self.state.stem}-{time.monotonic_ns()}.log"
        argv = [sys.executable, "-m", "bench.resume_upload", "--state", str(self.state), "--file", str(self.source),
                "--endpoint", self.receiver.s3.endpoint, "--bucket", self.receiver.bucket, "--key", self.key,
                "--ca", str(self.receiver.tls.cert_path), "--part-mib", str(self.part_mib),
                "--parallel", str(self.parallel), *extra]
        self.process = LOCAL.popen(argv, env=self.receiver.env(), log=self.log)
        return self.process

    def finish(self, timeout: float) -> dict:
        self.process.wait(timeout)
        return last_json(self.log)


class Rcd:
    """The sender's `rclone rcd` (the harness's Sidecar: its own process, as in the compose layout): jobs
    started and waited for; SIGKILLed like a dying agent's sidecar."""

    def __init__(self, logs: Path):
        self.sidecar = Sidecar(logs).start()

    @property
    def process(self):
        return self.sidecar.process

    def run(self, path: str, timeout: float, **params) -> dict:
        reply = self.sidecar.call(path, _async=True, **params)
        if "jobid" not in reply:
            raise RuntimeError(f"{path}: {reply.get('error', reply)}")
        jobid = reply["jobid"]
        status = wait_for(lambda: (s := self.sidecar.call("job/status", jobid=jobid)).get("finished") and s,
                          timeout, f"rclone job {path}", 0.1)
        return status

    def start_job(self, path: str, **params) -> int:
        return self.sidecar.call(path, _async=True, **params)["jobid"]

    def stop(self) -> None:
        self.sidecar.stop()


