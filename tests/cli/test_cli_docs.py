"""docs/cli.md lists every variable `dtn` reads, every command, and the exit statuses `dtn --help` gives."""

from __future__ import annotations

import re
from pathlib import Path

from portal.cli.__main__ import EXIT_CODES, build_parser

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "cli.md").read_text()
READERS = re.compile(r"""environ(?:\.get\(|\[)\s*["']([A-Z][A-Z0-9_]+)["']""")


def test_every_variable_the_cli_reads_is_documented_and_nothing_else():
    read = set()
    for source in (REPO / "portal" / "cli").glob("*.py"):
        read |= set(READERS.findall(source.read_text()))
    assert {"DTN_TOKEN", "DTN_PORTAL", "DTN_CONFIG_DIR", "DTN_PASSWORD", "DTN_S3_SECRET_KEY"} <= read
    environment = DOC.split("## Environment", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", environment))
    assert read - {"XDG_CONFIG_HOME"} == documented


def test_every_command_and_exit_status_is_documented():
    commands = build_parser()._subparsers._group_actions[0].choices
    for name in commands:
        assert f"`dtn {name}" in DOC, name
    table = DOC.split("## Exit status", 1)[1]
    for line in EXIT_CODES.splitlines()[1:7]:
        code = line.split()[0]
        assert f"\n| {code} |" in table, code
