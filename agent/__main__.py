"""`python -m agent` / `dtn-agent` (docs/agent.md): the agent itself is put together
in agent/app.py, which also says what each exit status means."""

from __future__ import annotations

import argparse
import sys

from agent import __version__, app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dtn-agent", description="The DTN-in-a-Box agent (see docs/agent.md).")
    parser.add_argument("--version", action="version", version=f"dtn-agent {__version__}")
    parser.add_argument("--check-config", action="store_true", help="check the configuration and exit")
    args = parser.parse_args(argv)
    return app.main(check_only=args.check_config)


if __name__ == "__main__":
    sys.exit(main())
