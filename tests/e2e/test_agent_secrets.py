"""Where the agent's secrets are, after a real transfer: the agent token only
in the one 0600 secrets file, the receiver's keys nowhere on disk, neither of
them on a command line, in an agent's environment, or in a log."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.harness import write_random

pytestmark = pytest.mark.e2e

FINISHED = ("succeeded", "failed", "canceled")
SKIP_LARGER_THAN = 64 * 1024 * 1024


def files_holding(roots, needles: dict[str, bytes], since: float) -> dict[str, set[str]]:
    """For each named secret, the files under `roots` that contain it. The secrets
    were made during the test, so only files written since `since` can hold them."""
    found = {name: set() for name in needles}
    seen = set()
    for root in roots:
        for directory, dirnames, filenames in os.walk(root, onerror=lambda e: None):
            for name in filenames:
                path = os.path.join(directory, name)
                try:
                    info = os.lstat(path)
                except OSError:
                    continue
                if not stat.S_ISREG(info.st_mode) or info.st_size > SKIP_LARGER_THAN or info.st_mtime < since:
                    continue
                if (info.st_dev, info.st_ino) in seen:
                    continue
                seen.add((info.st_dev, info.st_ino))
                try:
                    with open(path, "rb") as handle:
                        data = handle.read()
                except OSError:
                    continue  # a file another test removed meanwhile
                for secret, value in needles.items():
                    if value in data:
                        found[secret].add(path)
    return found


def test_secrets_live_only_in_the_0600_secrets_file(site, alice):
    # The container (and so its token) was made by the fixture, just before.
    started = time.time() - 60
    write_random(site.send_dir / "payload.bin", 2_000_000)
    agent = site.agent().start()
    transfer = site.send(["payload.bin"], prefix="secret-check")
    assert alice.wait_state(transfer, FINISHED)["state"] == "succeeded"
    rcd = agent.children()
    assert rcd

    needles = {"agent token": site.token.encode(), "receiver secret key": site.s3.secret_key.encode()}
    # The rc password the agent made for its rclone: in rclone's environment by design, nowhere else.
    rc_environ = Path(f"/proc/{rcd[0]}/environ").read_bytes().split(b"\0")
    rc_password = next(v.split(b"=", 1)[1] for v in rc_environ if v.startswith(b"RCLONE_RC_PASS="))
    assert len(rc_password) >= 32

    # Command lines of every process on the machine (what `ps` shows to everyone).
    ps = subprocess.run(["ps", "-eww", "-o", "pid=,args="], capture_output=True, check=True).stdout
    for name, value in needles.items():
        assert value not in ps, f"the {name} is on a command line"
    assert rc_password not in ps
    # The environments of the agent and of the rclone it started.
    for pid in [agent.pid, *rcd]:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        for name, value in needles.items():
            assert value not in environ, f"the {name} is in the environment of {pid}"
    needles["rclone rc password"] = rc_password

    # Logs: the agent's (rclone's output included), the S3 server's, the portal's.
    logs = [*site.logs.iterdir(), site.portal.log_path]
    for path in logs:
        data = Path(path).read_bytes()
        for name, value in needles.items():
            assert value not in data, f"the {name} is in {path}"

    # Files: $HOME, /tmp (which holds every test dir and the portal's), the state dir.
    roots = [os.path.expanduser("~"), "/tmp", str(site.scratch / "state")]
    found = files_holding(roots, needles, since=started)
    secrets_file = site.scratch / "state" / "secrets.env"
    assert found["agent token"] == {str(secrets_file)}, found["agent token"]
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert found["receiver secret key"] == set(), found["receiver secret key"]
    assert found["rclone rc password"] == set(), found["rclone rc password"]
