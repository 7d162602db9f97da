"""`dtn` before it asks any portal: --version, completion scripts for bash and zsh, --json on either side of
the command, usage errors and their exit status, and how times read."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from importlib import metadata

import pytest

from portal.cli.__main__ import build_parser
from portal.cli.output import human_time
from tests.cli.conftest import CLI, DTN

COMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)


@pytest.fixture
def cli(tmp_path):
    return CLI(tmp_path)


def test_version_prints_the_installed_version(cli):
    result = cli("--version")
    assert result.code == 0, result
    assert result.out.strip() == f"dtn {metadata.version('dtn-in-a-box')}"


def _bash_complete(words: list[str]) -> set[str]:
    """What bash offers after `words` (the last one being completed), with dtn's script sourced."""
    script = subprocess.run([str(DTN), "completion", "bash"], capture_output=True, text=True, check=True).stdout
    line = " ".join(words)
    program = (f"{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; COMP_LINE='{line}';"
               f" COMP_POINT={len(line)}; _shtab_dtn; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    return {word.strip() for word in done.stdout.splitlines() if word.strip()}


def test_bash_completion_offers_every_command_and_each_commands_options():
    assert {"receivers", "ls", "show", "events", "completion", "send", "watch"} <= set(COMMANDS)
    assert set(COMMANDS) <= _bash_complete(["dtn", "''"])
    assert _bash_complete(["dtn", "re"]) == {"receivers", "restart"}
    assert {"--from", "--to", "--watch", "--json", "--s3-no-tls"} <= _bash_complete(["dtn", "send", "--"])
    assert _bash_complete(["dtn", "completion", "''"]) == {"bash", "zsh"}


def test_zsh_completion_is_a_compdef_for_dtn_naming_every_command_with_its_help():
    result = CLI(DTN.parent)("completion", "zsh")
    assert result.code == 0, result
    assert result.out.startswith("#compdef dtn")
    for name in COMMANDS:
        assert f"    {name}:'" in result.out, name
    assert "receivers you may send to" in result.out
    if shutil.which("zsh"):
        checked = subprocess.run(["zsh", "-n"], input=result.out, capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr


def test_completion_for_an_unknown_shell_is_a_usage_error(cli):
    result = cli("completion", "fish")
    assert result.code == 2 and "invalid choice" in result.err


@pytest.mark.parametrize("args", [["--json", "containers"], ["containers", "--json"],
                                  ["--json", "show", "00000000-0000-0000-0000-000000000000"]])
def test_json_before_or_after_the_command(cli, args):
    # No sign-in: the error is what --json shapes, on either side of the command.
    result = cli(*args)
    assert result.code == 2, result
    assert result.json()["exit_status"] == 2 and "no sign-in" in result.json()["error"]
    assert result.err.startswith("dtn: error: no sign-in")


def test_without_json_errors_go_to_standard_error_only(cli):
    result = cli("containers")
    assert result.code == 2 and result.out == "" and "no sign-in" in result.err


@pytest.mark.parametrize("command", ["show", "events", "watch", "stop", "restart", "manifest"])
def test_an_id_that_is_not_one_is_a_plain_sentence_before_any_request(cli, command):
    result = cli(command, "12345", DTN_PORTAL="http://127.0.0.1:9", DTN_TOKEN="x")
    assert result.code == 2, result
    assert result.err.strip() == "dtn: error: '12345' is not a transfer ID (a UUID, as `dtn transfers` lists them)"


@pytest.mark.parametrize("args", [[], ["frobnicate"], ["ls"], ["show"], ["--json"]])
def test_usage_errors_exit_2(cli, args):
    result = cli(*args)
    assert result.code == 2, result
    assert "usage: dtn" in result.err


def test_times_read_as_a_person_reads_them():
    now = datetime(2026, 12, 4, 20, 0, 0, tzinfo=timezone.utc)

    def ago(**delta):
        return (now - timedelta(**delta)).isoformat()

    assert human_time(ago(seconds=2), now) == "just now"
    assert human_time(ago(seconds=42, microseconds=123456), now) == "42 s ago"
    assert human_time(ago(minutes=5, seconds=10), now) == "5 min ago"
    assert human_time(ago(hours=3, minutes=59), now) == "3 h ago"
    old = now - timedelta(days=3)
    assert human_time(old.isoformat(), now) == old.astimezone().strftime("%Y-%m-%d %H:%M")
    assert human_time("2026-12-04T19:59:58.123456Z", now) == "just now"
    assert human_time(None, now) == "never"
    precise = human_time("2026-12-04T19:59:58.123456+00:00", now, precise=True)
    assert "." not in precise and precise.count(":") == 2
