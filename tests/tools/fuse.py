"""A case-insensitive folder on a Linux machine, for the tests of a receiver whose filesystem ignores case
(issue 19): this kernel has no ext4/tmpfs casefold and no vfat, but it has /dev/fuse.

- Debian's `fuse3` (its `fusermount3`, which `rclone mount` calls to mount and we call to unmount),
  installed when missing (idempotent; `apt-get update` only when an install fails).
- `CaseInsensitiveMount`: `rclone mount --vfs-case-insensitive` of a real folder. A name not found as
  given is looked up ignoring case, so opening or creating `data.csv` where `Data.csv` is reaches
  `Data.csv`, as on Windows (case-preserving, case-insensitive); Unicode forms kept apart
  (`--no-unicode-normalization`, as NTFS does), so a probe must tell the two apart. `--vfs-cache-mode writes`,
  because without a cache rclone's VFS takes only sequential writes and no read-write opens, which a
  filesystem a server writes into must take.

A limit, measured: rclone's VFS fixes up a name it looks up, not the target of a rename. `rclone serve s3`
writes each object to `.rclone_temp_put_...` and renames it to its key, so two keys differing by case that
reach this mount land as two files, where a real case-insensitive filesystem keeps one (the second over
the first). The tests here are of a transfer refused before anything is written, which this does not weaken;
a test of what lands after such a collision would need a real case-insensitive filesystem.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from portal.box.processes import stop_group

DEVICE = Path("/dev/fuse")
FUSERMOUNT = "fusermount3"


class FuseUnavailable(RuntimeError):
    """This machine has no /dev/fuse (a container without the device): nothing to install can help, so a
    test skips with it. Any other trouble (an install that fails) is a RuntimeError: a test fails."""


def _run(argv, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, **kwargs)


def ensure_fuse() -> str:
    """The path of fusermount3, installing Debian's fuse3 if missing."""
    if not DEVICE.exists():
        raise FuseUnavailable(f"{DEVICE} is absent: this machine cannot mount FUSE filesystems")
    found = shutil.which(FUSERMOUNT)
    if found:
        return found
    if os.geteuid() != 0:
        raise RuntimeError(f"{FUSERMOUNT} is missing and only root can install it: apt-get install -y fuse3")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "fuse3"]
    done = _run(install, env=env, timeout=600)
    if done.returncode != 0:
        # A fresh machine's package lists may be empty or stale.
        _run(["apt-get", "update", "-q"], env=env, timeout=600)
        done = _run(install, env=env, timeout=600)
    found = shutil.which(FUSERMOUNT)
    if done.returncode != 0 or not found:
        raise RuntimeError(f"apt-get install fuse3 failed:\n{done.stderr[-2000:]}")
    return found


def unmount(mountpoint: Path) -> None:
    # -z: lazily, so a process still inside it (a server being stopped) cannot keep the mount alive.
    _run([FUSERMOUNT, "-u", "-z", str(mountpoint)], timeout=30)


class CaseInsensitiveMount:
    """`rclone mount --vfs-case-insensitive backing mountpoint` in the foreground, its log in `log_path`.
    A context manager: mounted on entry (or FuseUnavailable / RuntimeError within `timeout`), unmounted
    and its process stopped on exit."""

    def __init__(self, rclone: Path, backing: Path, mountpoint: Path, cache_dir: Path, log_path: Path,
                 timeout: float = 30):
        self.rclone, self.backing, self.mountpoint = Path(rclone), Path(backing), Path(mountpoint)
        self.cache_dir, self.log_path, self.timeout = Path(cache_dir), Path(log_path), timeout
        self.process: subprocess.Popen | None = None

    def argv(self) -> list[str]:
        return [str(self.rclone), "mount", str(self.backing), str(self.mountpoint),
                "--vfs-case-insensitive", "--no-unicode-normalization",
                "--vfs-cache-mode", "writes", "--cache-dir", str(self.cache_dir),
                # Written files reach the backing folder 1 s after they are closed, not 5 s. Not at once: the
                # receiver's server sets a file's mtime just after closing it, and an upload already under
                # way then fails ("source file is being updated") and is tried again.
                "--vfs-write-back", "1s",
                # What the receiver's server writes through the mount is listed at once.
                "--dir-cache-time", "1s", "--attr-timeout", "0s",
                "--config", "/dev/null", "--log-file", str(self.log_path), "-v"]

    def __enter__(self) -> "CaseInsensitiveMount":
        ensure_fuse()
        for folder in (self.backing, self.mountpoint, self.cache_dir):
            folder.mkdir(parents=True, exist_ok=True)
        # rclone finds fusermount3 on PATH; ours may have come from apt just now.
        env = {**os.environ, "PATH": f"{os.environ.get('PATH', '')}:/usr/bin:/bin"}
        self.process = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + self.timeout
        try:
            while not os.path.ismount(self.mountpoint):
                if self.process.poll() is not None:
                    raise RuntimeError(f"rclone mount exited {self.process.returncode}:\n{self.log_tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"rclone mount not mounted within {self.timeout} s:\n{self.log_tail()}")
                time.sleep(0.1)
        except BaseException:
            self.close()
            raise
        return self

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def close(self) -> None:
        try:
            if os.path.ismount(self.mountpoint):
                unmount(self.mountpoint)
        finally:
            stop_group(self.process, timeout=15)

    def __exit__(self, *exc) -> None:
        self.close()
