"""`python -m portal.box demo` (make demo) and `python -m portal.box run` (make run)."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from portal.box.processes import REPO, BoxError, Processes
from portal.box.story import free_port, say, send_and_verify, set_up


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m portal.box")
    parser.add_argument("action", choices=["demo", "run"],
                        help="demo: the whole story through a verified transfer, then stop; "
                             "run: set up and keep everything running until Ctrl-C")
    parser.add_argument("--root", type=Path, help="where the box keeps its state (default var/<action>)")
    parser.add_argument("--port", type=int, default=8000, help="the portal's port (run; demo takes a free one)")
    args = parser.parse_args(argv)
    root = (args.root or REPO / "var" / args.action).resolve()
    processes = Processes(root / "logs")

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    started = time.monotonic()
    try:
        port = free_port() if args.action == "demo" else free_port(args.port)
        box = set_up(processes, root, port)
        if args.action == "demo":
            status = send_and_verify(processes, box)
            say(f"Demo finished in {time.monotonic() - started:.0f} s; logs in {root / 'logs'}")
            return status
        say("")
        say(f"The box is running. Portal: {box.url}/  (API docs: {box.url}/api/docs/)")
        say(f"  Alice: username alice, password {box.passwords['alice']}  (sender container {box.alice_box['container_id']})")
        say(f"  Bob:   username bob,   password {box.passwords['bob']}  (receiver container {box.bob_box['container_id']})")
        say(f"  Alice's send folder: {root / 'alice-send'}   Bob's receive folder: {root / 'bob-received'}")
        say("Press Ctrl-C to stop.")
        while True:
            processes.check_alive()
            time.sleep(1)
    except KeyboardInterrupt:
        say("\nStopping the box…")
        return 0
    except BoxError as exc:
        say(f"✗ {exc}")
        return 1
    finally:
        processes.stop_all()


if __name__ == "__main__":
    sys.exit(main())
