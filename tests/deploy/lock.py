"""The runtime dependencies of the project, as installed in this virtualenv: what
rclone/constraints.txt pins for the images. Regenerate that file after changing
dependencies (and check the tests still pass):

    .venv/bin/python -m tests.deploy.lock > rclone/constraints.txt
"""

from __future__ import annotations

import re
from importlib import metadata

from packaging.markers import default_environment
from packaging.requirements import Requirement

PROJECT = "dtn-in-a-box"
# The image's interpreter: what the markers of dependencies are evaluated against.
IMAGE_PYTHON = "3.11"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_closure(project: str = PROJECT) -> dict[str, str]:
    """{canonical name: installed version} of every package the project needs at run time."""
    environment = {**default_environment(), "python_version": IMAGE_PYTHON, "extra": ""}
    seen: dict[str, str] = {}
    todo = [Requirement(text) for text in metadata.requires(project) or []]
    while todo:
        requirement = todo.pop()
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        name = canonical(requirement.name)
        if name in seen:
            continue
        seen[name] = metadata.version(requirement.name)
        todo.extend(Requirement(text) for text in metadata.requires(requirement.name) or [])
    return seen


def render() -> str:
    lines = ["# Versions the images install (pip --constraint): the runtime dependencies of dtn-in-a-box",
             "# as tested. Regenerate with: .venv/bin/python -m tests.deploy.lock > rclone/constraints.txt"]
    lines += [f"{name}=={version}" for name, version in sorted(runtime_closure().items())]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
