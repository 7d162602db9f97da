"""docs/agent.md lists every variable agent/config.py reads, and nothing else."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
READERS = re.compile(r"""\.(?:text|secret|integer|number|boolean)\(\s*["']([A-Z][A-Z0-9_]+)["']""")


def variables_in_code() -> set[str]:
    # NAME_FILE is documented with its NAME, as "(`_FILE`)".
    names = set(READERS.findall((REPO / "agent" / "config.py").read_text()))
    return {name.removesuffix("_FILE") if name.removesuffix("_FILE") in names else name for name in names}


def variables_in_docs() -> set[str]:
    text = (REPO / "docs" / "agent.md").read_text()
    table = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(DTN_[A-Z0-9_]+)`", table, re.MULTILINE))


def test_the_config_reads_variables_at_all():
    assert {"DTN_PORTAL_URL", "DTN_AGENT_TOKEN", "DTN_SEND_DIR"} <= variables_in_code()


def test_every_variable_the_agent_reads_is_in_the_table_and_nothing_else():
    assert variables_in_code() == variables_in_docs()
