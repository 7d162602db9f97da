"""Reading a Dockerfile without docker: its stages, and the instructions of each, with line
continuations joined. Enough for the tests' questions (which stages exist, what each COPYs, runs as,
checks health with, and sets in its environment)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Stage:
    name: str | None
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for word, args in self.instructions if word == keyword]


def instructions(path: Path) -> list[tuple[str, str]]:
    result = []
    pending = ""
    for raw in Path(path).read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, args = line.partition(" ")
        result.append((word.upper(), args.strip()))
    return result


def stages(path: Path) -> list[Stage]:
    found: list[Stage] = []
    for word, args in instructions(path):
        if word == "FROM":
            match = re.fullmatch(r"(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", args, re.IGNORECASE)
            found.append(Stage(name=match.group(2), base=match.group(1)))
        elif found:
            found[-1].instructions.append((word, args))
    return found


def chain(path: Path, target: str) -> list[Stage]:
    """The stage `target` and the stages it is built FROM, base first."""
    by_name = {stage.name: stage for stage in stages(path) if stage.name}
    result = []
    stage = by_name[target]
    while True:
        result.insert(0, stage)
        if stage.base not in by_name:
            return result
        stage = by_name[stage.base]


def env(path: Path, target: str) -> dict[str, str]:
    """ENV of the target as the image has it (key=value form only; $VAR refers to earlier values)."""
    values: dict[str, str] = {}
    for stage in chain(path, target):
        for args in stage.all("ENV"):
            for item in shlex.split(args):
                name, sep, value = item.partition("=")
                assert sep, f"ENV {args!r}: use the NAME=value form"
                values[name] = re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: values.get(m.group(1), f"${m.group(1)}"), value)
    return values
