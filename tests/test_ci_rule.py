"""Under CI=true a skipped or xfailed test fails the run: a test that did not
run proves nothing."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run(tmp_path, body: str, ci: bool) -> int:
    test = tmp_path / "test_sample.py"
    test.write_text("import pytest\n\n" + body)
    env = {**os.environ, "CI": "true" if ci else "false"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-c", str(REPO / "pyproject.toml"),
         "--rootdir", str(REPO), "-p", "no:cacheprovider", str(test)],
        cwd=REPO, env=env, capture_output=True).returncode


@pytest.mark.parametrize("body", [
    "def test_it():\n    pytest.skip('not here')\n",
    "@pytest.mark.xfail(reason='known')\ndef test_it():\n    assert False\n",
])
def test_a_test_that_did_not_run_fails_the_run_under_ci(tmp_path, body):
    assert run(tmp_path, body, ci=True) == 1
    assert run(tmp_path, body, ci=False) == 0


def test_a_passing_run_passes_under_ci(tmp_path):
    assert run(tmp_path, "def test_it():\n    assert True\n", ci=True) == 0
