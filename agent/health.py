"""Health checks for containers (the images' HEALTHCHECK, the compose files' healthcheck).

    python -m agent.health            the agent: healthy while its last accepted heartbeat is recent
    python -m agent.health rclone     the rclone rcd sidecar: healthy while rc answers, with its credentials

Exit status 0 is healthy, 1 unhealthy; one line on stdout says why (docker keeps it in `docker inspect`).

The agent's check never calls the portal itself (a check that heartbeats would keep a stuck agent
"online"). It reads a marker that the running agent rewrites after every heartbeat the portal accepted (and every
claim it answered: an idle sender's claims stand for most of its heartbeats):
`$DTN_STATE_DIR/heartbeat`, holding the heartbeat interval then in force, in seconds. The agent is
healthy while that file is younger than three intervals plus a grace period: the portal's own rule is
that three missed beats make a container offline.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from agent.statefile import write_atomic

MARKER_NAME = "heartbeat"
MISSED_BEATS = 3
GRACE_SECONDS = 30.0
DEFAULT_INTERVAL = 30.0
DEFAULT_RC_URL = "http://127.0.0.1:5572"


def mark(state_dir: Path, interval_seconds: float) -> None:
    """Record a heartbeat the portal accepted (the agent calls this after each one)."""
    write_atomic(Path(state_dir) / MARKER_NAME, f"{float(interval_seconds):g}\n".encode(), 0o644)


def check_agent(state_dir: Path, now: float | None = None) -> tuple[bool, str]:
    path = Path(state_dir) / MARKER_NAME
    now = time.time() if now is None else now
    try:
        age = now - path.stat().st_mtime
        text = path.read_text().strip()
    except FileNotFoundError:
        return False, f"no heartbeat accepted yet ({path} is missing)"
    except OSError as exc:
        return False, f"{path} cannot be read: {exc.strerror}"
    try:
        interval = float(text) if text else DEFAULT_INTERVAL
    except ValueError:
        interval = DEFAULT_INTERVAL
    limit = MISSED_BEATS * max(interval, 1.0) + GRACE_SECONDS
    if age > limit:
        return False, f"last heartbeat accepted {age:.0f} s ago (more than {limit:.0f} s)"
    return True, f"last heartbeat accepted {max(age, 0):.0f} s ago"


def check_rclone(url: str, user: str, password: str, timeout: float = 5.0) -> tuple[bool, str]:
    if not user or not password:
        return False, "RCLONE_RC_USER and RCLONE_RC_PASS are not set: rclone's rc must never run without auth"
    request = urllib.request.Request(f"{url.rstrip('/')}/core/version", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (an http URL we were given)
            if response.status == 200:
                return True, "rclone rc answers"
            return False, f"rclone rc answered {response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"rclone rc answered {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"rclone rc at {url} does not answer: {getattr(exc, 'reason', exc)}"


def main(argv: list[str] | None = None, environ=None) -> int:
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(prog="python -m agent.health", description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="?", choices=("agent", "rclone"), default="agent")
    parser.add_argument("--url", default=DEFAULT_RC_URL, help="the rc address (rclone only)")
    args = parser.parse_args(argv)
    if args.what == "rclone":
        # The sidecar's own credentials, from its environment (never from argv, which ps shows).
        ok, why = check_rclone(args.url, environ.get("RCLONE_RC_USER", ""), environ.get("RCLONE_RC_PASS", ""))
    else:
        from agent.config import DEFAULT_STATE_DIR

        state_dir = Path(environ.get("DTN_STATE_DIR") or DEFAULT_STATE_DIR).expanduser()
        ok, why = check_agent(state_dir)
    print(f"{'healthy' if ok else 'unhealthy'}: {why}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
