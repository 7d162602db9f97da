"""docs/configuration.md lists every variable the programs read, and nothing else."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
READERS = re.compile(r"""(?:env_(?:str|bool|int|list|secret)|environ\.get|getenv)\(\s*["']([A-Z][A-Z0-9_]+)["']""")
SOURCES = ["portal/settings.py", "portal/gunicorn.conf.py"]


def variables_in_code() -> set[str]:
    names = set()
    for source in SOURCES:
        names |= set(READERS.findall((REPO / source).read_text()))
    return names


def variables_in_docs() -> set[str]:
    text = (REPO / "docs" / "configuration.md").read_text()
    return set(re.findall(r"`((?:DTN|DATABASE)_[A-Z0-9_]+)`", text))


def test_the_code_reads_variables_at_all():
    assert {"DTN_STATE_DIR", "DATABASE_URL", "DTN_BIND"} <= variables_in_code()


def test_every_variable_the_code_reads_is_documented():
    assert variables_in_code() - variables_in_docs() == set()


def test_every_documented_variable_is_read_by_the_code():
    documented = {name for name in variables_in_docs() if not name.endswith("_FILE")}
    assert documented - variables_in_code() == set()
