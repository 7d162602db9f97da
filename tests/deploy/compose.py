"""Reading the compose files as docker compose would, without docker: the .env file, variable
interpolation as the compose specification defines it, and the parts of a service the tests check.

`LocalRun` then plays one compose service as a local process: its `command`, its `environment`
(interpolated from .env.example plus the test's values), its volumes as local folders (a bind mount
is its host path, a named volume a temp folder shared by the services that mount it, as in compose),
and its network as 127.0.0.1 with a free port for every container port."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from portal.box.processes import stop_group

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILES = {
    "portal": REPO / "docker-compose.portal.yml",
    "sender": REPO / "docker-compose.sender.yml",
    "receiver": REPO / "docker-compose.receiver.yml",
}
ENV_EXAMPLE = REPO / ".env.example"
VENV_BIN = Path(sys.executable).parent

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?err}, ${NAME?err}, ${NAME:+alt}, ${NAME+alt}, $NAME
# The innermost ${...} (its argument holds no other): compose resolves nested defaults inside out.
_BRACED = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}$]*))?\}")
_BARE = re.compile(r"\$(?P<name>[A-Za-z_][A-Za-z0-9_]*)")


class MissingVariable(Exception):
    pass



def build_of(file: dict, name: str) -> dict | None:
    """How a service's image is built: its own `build`, or that of the one service of the file that builds the
    same image (each image has one builder: two services building one tag race)."""
    service = file["services"][name]
    if service.get("build"):
        return service["build"]
    builders = [other["build"] for other in file["services"].values()
                if other.get("build") and other.get("image") == service.get("image")]
    return builders[0] if builders else None


def load(path: Path) -> dict:
    return yaml.safe_load(Path(path).read_text())


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    values = {}
    for number, raw in enumerate(Path(path).read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"{path}:{number}: not NAME=value: {raw!r}")
        values[name] = value
    return values


def strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)


def variables_in(node) -> set[str]:
    """Every variable a compose file (parsed: comments are not interpolated) interpolates; $$ is a literal $."""
    found = set()
    for text in strings(node):
        for part in text.split("$$"):
            found |= set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", part))
            found |= {m.group("name") for m in _BARE.finditer(part)}
    return found


def interpolate_string(value: str, env: dict[str, str]) -> str:
    def braced(match: re.Match) -> str:
        name, op, arg = match.group("name"), match.group("op"), match.group("arg") or ""
        present = name in env
        non_empty = present and env[name] != ""
        if op is None:
            return env.get(name, "")
        if op == ":-":
            return env[name] if non_empty else arg
        if op == "-":
            return env[name] if present else arg
        if op == ":?":
            if not non_empty:
                raise MissingVariable(f"{name}: {arg}")
            return env[name]
        if op == "?":
            if not present:
                raise MissingVariable(f"{name}: {arg}")
            return env[name]
        if op == ":+":
            return arg if non_empty else ""
        if op == "+":
            return arg if present else ""
        raise AssertionError(op)

    parts = value.split("$$")
    out = []
    for part in parts:
        # Inside out, at most as deep as the files nest defaults (twice, in the portal file).
        for _ in range(3):
            resolved = _BRACED.sub(braced, part)
            if resolved == part:
                break
            part = resolved
        part = _BARE.sub(lambda m: env.get(m.group("name"), ""), part)
        out.append(part)
    return "$".join(out)


def interpolate(node, env: dict[str, str]):
    if isinstance(node, str):
        return interpolate_string(node, env)
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    return node


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {name: "" if value is None else str(value) for name, value in env.items()}


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool
    named: bool


def mounts(service: dict, file: dict) -> list[Mount]:
    result = []
    named_volumes = set(file.get("volumes") or {})
    for item in service.get("volumes") or []:
        if isinstance(item, dict):
            source, target = item.get("source", ""), item["target"]
            read_only = bool(item.get("read_only"))
        else:
            pieces = item.split(":")
            source, target = pieces[0], pieces[1]
            read_only = len(pieces) > 2 and "ro" in pieces[2].split(",")
        named = not source.startswith(("/", ".", "~")) and source != ""
        if named:
            assert source in named_volumes, f"volume {source!r} is not declared"
        result.append(Mount(source, target, read_only, named))
    return result


def published_ports(service: dict) -> list[str]:
    return [str(item if not isinstance(item, dict) else f"{item.get('published')}:{item['target']}")
            for item in service.get("ports") or []]


def container_ports(service: dict) -> set[int]:
    """The ports a service listens on, as compose files declare them (expose, ports targets) and as
    its command says (`--rc-addr` / `--addr` host:port, which may be its namespace's loopback)."""
    found = set()
    command = [str(arg) for arg in service.get("command") or []]
    for flag, value in zip(command, command[1:]):
        if flag in ("--rc-addr", "--addr") and value.rsplit(":", 1)[-1].isdigit():
            found.add(int(value.rsplit(":", 1)[-1]))
    for item in service.get("expose") or []:
        found.add(int(str(item).split("/")[0]))
    for spec in published_ports(service):
        target = spec.rsplit(":", 1)[-1].split("/")[0]
        if "-" not in target:
            found.add(int(target))
    return found


@dataclass
class Project:
    """One compose file, interpolated, with its volumes as local folders and its ports as local ones."""

    path: Path
    env: dict[str, str]
    scratch: Path
    # (service, container port) -> local port; a service not run here (db) can be pointed elsewhere.
    ports: dict[tuple[str, int], int] = field(default_factory=dict)

    def __post_init__(self):
        self.raw = load(self.path)
        self.file = interpolate(self.raw, self.env)
        self.volume_dirs: dict[str, Path] = {}

    def service(self, name: str) -> dict:
        return self.file["services"][name]

    def volume_dir(self, name: str) -> Path:
        if name not in self.volume_dirs:
            path = self.scratch / "volumes" / name
            path.mkdir(parents=True, exist_ok=True)
            # Docker makes a new named volume with the image folder's mode; the agent's is 0700.
            path.chmod(0o700)
            self.volume_dirs[name] = path
        return self.volume_dirs[name]

    def assign_ports(self, *services: str) -> None:
        """A free local port for every port these services listen on."""
        from tests.tools.net import free_port

        for name in services:
            for port in container_ports(self.service(name)):
                self.ports.setdefault((name, port), free_port())

    def path_map(self, name: str) -> dict[str, str]:
        mapping = {}
        for target in self.service(name).get("tmpfs") or []:
            path = self.scratch / "tmpfs" / name / target.strip("/").replace("/", "_")
            path.mkdir(parents=True, exist_ok=True)
            mapping[target] = str(path)
        for mount in mounts(self.service(name), self.file):
            mapping[mount.target] = str(self.volume_dir(mount.source)) if mount.named else mount.source
        return mapping

    def rewrite(self, name: str, value: str) -> str:
        """A value as the local process must see it: container paths, host names and ports made local."""
        for target, local in sorted(self.path_map(name).items(), key=lambda item: -len(item[0])):
            if value == target or value.startswith(target + "/"):
                return local + value[len(target):]
        mode = str(self.service(name).get("network_mode") or "")
        # A service in another's network namespace (network_mode: service:X) has X's ports as its own.
        own = {name, mode.split(":", 1)[1]} if mode.startswith("service:") else {name}
        for (service, port), local_port in self.ports.items():
            value = value.replace(f"//{service}:{port}", f"//127.0.0.1:{local_port}")
            value = value.replace(f"@{service}:{port}/", f"@127.0.0.1:{local_port}/")
            if service in own:
                for own in ("0.0.0.0", "127.0.0.1", "localhost"):
                    value = value.replace(f"{own}:{port}", f"127.0.0.1:{local_port}")
        return value

    def command(self, name: str, key: str = "command") -> list[str]:
        service = self.service(name)
        if key == "healthcheck":
            argv = list(service["healthcheck"]["test"])
            assert argv[0] == "CMD", argv
            argv = argv[1:]
        else:
            argv = list(service[key])
        return [self.rewrite(name, arg) for arg in argv]

    def image_env(self, name: str) -> dict[str, str]:
        """ENV of the image the service is built from (its Dockerfile target), made local."""
        from tests.deploy import dockerfile

        build = build_of(self.file, name)
        if not build:
            return {}
        path = REPO / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
        env = dockerfile.env(path, build["target"])
        if "PATH" in env:
            # The image's virtualenv is this one; the rest of its PATH is the base image's.
            env["PATH"] = env["PATH"].replace("/opt/venv/bin", str(VENV_BIN)).replace("$PATH", "/usr/local/bin:/usr/bin:/bin")
        return env

    def process_env(self, name: str) -> dict[str, str]:
        """The service's environment as the container would have it (image ENV, then compose's), made local."""
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(self.scratch)}
        image = self.image_env(name)
        # Already local (this venv), and not to be mapped again: a checkout under /tmp would
        # otherwise be taken for the container's /tmp mount.
        local_path = image.pop("PATH", None)
        for key, value in {**image, **environment(self.service(name))}.items():
            env[key] = self.rewrite(name, value)
        if local_path:
            env["PATH"] = local_path
        return env

    def popen(self, name: str, log: Path, key: str = "command", **kwargs) -> subprocess.Popen:
        with open(log, "ab") as handle:
            return subprocess.Popen(self.command(name, key), env=self.process_env(name), cwd=REPO,
                                    stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, **kwargs)

    def run(self, name: str, key: str = "command", timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(name, key), env=self.process_env(name), cwd=REPO, capture_output=True,
                              text=True, timeout=timeout)


stop = stop_group
