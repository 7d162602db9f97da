"""The real engine for the compose tests: one private dockerd for the module, the base images made
from Debian's packages, and a copy of this checkout per site (each site has its own `.env` beside the
compose files, as each machine of a real deployment does)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.tools.dockerengine import CADDY, POSTGRES, PYTHON_BASE, Engine, EngineUnavailable, ensure_base_image

REPO = Path(__file__).resolve().parents[3]
PROJECTS = {"portal": "docker-compose.portal.yml", "sender": "docker-compose.sender.yml",
            "receiver": "docker-compose.receiver.yml"}


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    engine = Engine(tmp_path_factory.mktemp("engine"))
    try:
        engine.start()
        for recipe in (PYTHON_BASE, POSTGRES, CADDY):
            ensure_base_image(engine.client, recipe, tmp_path_factory.mktemp("rootfs"))
    except EngineUnavailable as exc:
        engine.stop()
        pytest.fail(str(exc))
    # What an earlier run killed mid-way left in the cached store: its projects' volumes.
    engine.client.volumes.prune(filters={"label": "com.docker.compose.project"})
    yield engine
    # The story's last test stops it and asserts the host is as it was; this covers a failure before.
    engine.stop()


def copy_checkout(into: Path) -> Path:
    """The checkout's files as a clone has them (what git tracks, and new files not ignored)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return into


def fill_env(site: Path, values: dict[str, str]) -> None:
    """Set `values` in the site's .env, in place of the example's empty lines."""
    path = site / ".env"
    lines = path.read_text().splitlines()
    left = dict(values)
    for index, line in enumerate(lines):
        name = line.split("=", 1)[0]
        if "=" in line and not line.startswith("#") and name in left:
            lines[index] = f"{name}={left.pop(name)}"
    lines += [f"{name}={value}" for name, value in left.items()]
    path.write_text("\n".join(lines) + "\n")
