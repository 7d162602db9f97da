"""The box keeps its state for its user only: folders 0700, the SQLite database, its journal and the logs 0600,
whatever umask it was started with."""

from __future__ import annotations

import os
import stat
import sys

import pytest

from portal.box import processes
from portal.box.story import make_folders


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(autouse=True)
def open_umask():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_the_folders_are_private(tmp_path):
    root = tmp_path / "box"
    make_folders(root)
    assert {path.name: mode(path) for path in [root, *root.iterdir()]} == {
        name: 0o700 for name in ("box", "portal", "logs", "alice-send", "bob-received", "alice-agent", "bob-agent")}


def test_the_database_is_private(tmp_path):
    state = tmp_path / "portal"
    state.mkdir(mode=0o700)
    env = processes.portal_env(state, 8000, DATABASE_URL=f"sqlite:///{state / 'portal.sqlite3'}")
    processes.migrate(env)
    files = [path for path in state.rglob("*") if path.is_file()]
    assert state / "portal.sqlite3" in files
    assert {path.name: mode(path) for path in files} == {path.name: 0o600 for path in files}


def test_logs_and_what_the_processes_write_are_private(tmp_path):
    started = processes.Processes(tmp_path)
    written = tmp_path / "written"
    code = "import sys; open(sys.argv[1], 'w').write('x'); print('hello')"
    started.start("child", [sys.executable, "-c", code, str(written)], dict(os.environ)).wait(timeout=30)
    assert mode(tmp_path / "child.log") == 0o600
    assert (tmp_path / "child.log").read_text().strip() == "hello"
    assert mode(written) == 0o600
