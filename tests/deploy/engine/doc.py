"""docs/deployment.md as the compose test reads it: the `sh` blocks of a section, command by command,
so that the commands a person copies from the page are the ones the test runs."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[3] / "docs" / "deployment.md"
# The doc's example folders; the test runs the same commands on folders of its own.
EXAMPLE_SEND_FOLDER = "/srv/dtn/outgoing"
EXAMPLE_RECEIVE_FOLDER = "/srv/dtn/incoming"


def section(title: str, text: str | None = None) -> str:
    """The body of the `## title` section, up to the next `## ` heading."""
    text = DOC.read_text() if text is None else text
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    if match is None:
        raise AssertionError(f"docs/deployment.md has no section '## {title}'")
    return match.group(1)


def commands(title: str, text: str | None = None) -> list[str]:
    """Every command line of the section's ```sh blocks, in order (comments and blank lines left out)."""
    body = section(title, text)
    found = []
    for block in re.findall(r"^[ \t]*```sh\n(.*?)^[ \t]*```", body, flags=re.M | re.S):
        for line in block.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                found.append(line)
    if not found:
        raise AssertionError(f"docs/deployment.md: no ```sh block in '## {title}'")
    return found


def env_names(title: str, text: str | None = None) -> set[str]:
    """The variables the section's blocks tell a person to set in .env (its `# in .env:` lines)."""
    names = set()
    for block in re.findall(r"^[ \t]*```sh\n(.*?)^[ \t]*```", section(title, text), flags=re.M | re.S):
        for line in block.splitlines():
            if line.strip().startswith("# in .env:"):
                names |= set(re.findall(r"\b[A-Z][A-Z0-9_]+\b", line.split(":", 1)[1]))
    return names
