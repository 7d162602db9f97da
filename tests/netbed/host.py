"""What the bed needs from, and must give back to, the host: tools, root, the
host-wide congestion-control allow list, and the search for leftovers."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

NETNS_DIR = Path("/run/netns")
PREFIX = "dtn-"
TMP_PREFIX = "dtn-netbed-"
# dtn-<creator pid>x<random>-<role>
NAME_RE = re.compile(r"^dtn-(?P<pid>\d+)x(?P<tag>[0-9a-f]+)-(?P<role>portal|sender|receiver)$")
RUN_RE = re.compile(r"^(?P<pid>\d+)x(?P<tag>[0-9a-f]+)$")
TOOLS = {"ip": "iproute2", "nft": "nftables", "iperf3": "iperf3"}
ALLOWED_CC = Path("/proc/sys/net/ipv4/tcp_allowed_congestion_control")

_tools_lock = threading.Lock()
_tools_done = False


class BedUnavailable(RuntimeError):
    """The bed cannot run here (not root, no TUN device, no network namespaces).
    Tests turn this into a skip with the message as the reason."""


def unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "netbed needs root (network namespaces, TUN devices, host sysctls); run the tests as root"
    if not os.path.exists("/dev/net/tun"):
        return "netbed needs /dev/net/tun, which this machine lacks"
    if not os.path.exists("/proc/self/ns/net"):
        return "netbed needs network namespaces, which this kernel lacks"
    return None


def _apt(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", *args], env=env, capture_output=True, text=True, timeout=600)


def ensure_tools(tools: dict[str, str] | None = None) -> None:
    """apt-get install the packages whose commands are missing (idempotent; as
    root). `apt-get update` runs once, only when an install fails."""
    global _tools_done
    with _tools_lock:
        if _tools_done and tools is None:
            return
        wanted = tools or TOOLS
        missing = sorted({package for command, package in wanted.items() if shutil.which(command) is None})
        if missing:
            if os.geteuid() != 0:
                raise BedUnavailable(f"missing {', '.join(missing)} and not root to install them")
            install = ["install", "-y", "-q", "--no-install-recommends", *missing]
            done = _apt(install)
            if done.returncode != 0:
                _apt(["update", "-q"])
                done = _apt(install)
            if done.returncode != 0:
                raise RuntimeError(f"apt-get {' '.join(install)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
            still = [command for command in wanted if shutil.which(command) is None]
            if still:
                raise RuntimeError(f"installed {', '.join(missing)} but still missing: {', '.join(still)}")
        if tools is None:
            _tools_done = True


# --- congestion control --------------------------------------------------------
# New namespaces take their default congestion control only from the host-wide
# allow list. What a bed adds there is removed again when the last bed of this
# process that needed it closes (and recorded in its temp dir, so a sweep after
# a SIGKILL can remove it too).

_cc_lock = threading.Lock()
_cc_added: dict[str, int] = {}  # name -> number of live beds that needed it added


def allowed_congestion_control() -> list[str]:
    return ALLOWED_CC.read_text().split()


def available_congestion_control() -> list[str]:
    return Path("/proc/sys/net/ipv4/tcp_available_congestion_control").read_text().split()


def allow_congestion_control(name: str) -> bool:
    """Make `name` usable as a namespace default; True when it was added here."""
    with _cc_lock:
        allowed = allowed_congestion_control()
        if name in allowed:
            if name in _cc_added:
                _cc_added[name] += 1
                return True
            return False
        if name not in available_congestion_control():
            subprocess.run(["modprobe", f"tcp_{name}"], capture_output=True)
        ALLOWED_CC.write_text(" ".join([*allowed, name]))
        _cc_added[name] = 1
        return True


def release_congestion_control(name: str) -> None:
    with _cc_lock:
        if name not in _cc_added:
            return
        _cc_added[name] -= 1
        if _cc_added[name] > 0:
            return
        del _cc_added[name]
        remove_allowed(name)


def remove_allowed(name: str) -> None:
    allowed = allowed_congestion_control()
    if name in allowed:
        ALLOWED_CC.write_text(" ".join(n for n in allowed if n != name))


# --- processes, namespaces, leftovers ---------------------------------------------

def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def netns_names() -> list[str]:
    try:
        return sorted(name for name in os.listdir(NETNS_DIR) if name.startswith(PREFIX))
    except FileNotFoundError:
        return []


def netns_pids(name: str) -> list[int]:
    done = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
    return [int(p) for p in done.stdout.split() if p.isdigit()]


def kill_pids(pids: list[int], grace: float = 3.0) -> None:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL."""
    pids = [p for p in pids if p != os.getpid()]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_running(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if _running(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie child of ours is gone for our purposes
    once its parent, maybe us, reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def delete_netns(name: str) -> None:
    kill_pids(netns_pids(name))
    subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def processes_of_run(run_id: str) -> list[tuple[int, str]]:
    """Processes whose command line names the run (the forwarder, probes, ...)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if run_id in cmdline and _running(int(entry)):
            found.append((int(entry), cmdline.strip()))
    return found


def leftovers(run_ids: list[str] | tuple[str, ...] | None = None, cc_allowed: list[str] | None = None) -> list[str]:
    """What a bed of these runs (all runs when None) left behind: namespaces,
    processes, netns mounts, temp dirs, nftables tables and, when `cc_allowed` is
    given, a changed congestion-control allow list. Empty when clean."""
    def ours(text: str) -> bool:
        return any(run_id in text for run_id in run_ids) if run_ids is not None else True

    found = []
    for name in netns_names():
        if ours(name):
            found.append(f"network namespace {name} (pids {netns_pids(name)})")
    for run_id in run_ids or []:
        for pid, cmdline in processes_of_run(run_id):
            found.append(f"process {pid}: {cmdline}")
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        mounts = []
    for line in mounts:
        fields = line.split()
        if len(fields) > 4 and fields[4].startswith(str(NETNS_DIR / PREFIX)) and ours(fields[4]):
            found.append(f"mount {fields[4]}")
    tmp = Path(tempfile.gettempdir())
    for path in sorted(tmp.glob(f"{TMP_PREFIX}*")):
        if ours(path.name):
            found.append(f"temp dir {path}")
    if shutil.which("nft"):
        tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
        for line in tables.splitlines():
            if "dtn" in line and ours(line):
                found.append(f"nftables table in the host namespace: {line.strip()}")
    if cc_allowed is not None and allowed_congestion_control() != cc_allowed:
        found.append(f"tcp_allowed_congestion_control is {' '.join(allowed_congestion_control())!r}, "
                     f"was {' '.join(cc_allowed)!r}")
    return found


def remove_runs(run_ids: list[str]) -> list[str]:
    """Remove whatever the given runs left: namespaces with every process inside,
    processes naming the run, temp dirs, and the congestion control recorded
    there as added to the allow list. Returns what was removed."""
    removed = []
    for name in netns_names():
        match = NAME_RE.match(name)
        if match and f"{match['pid']}x{match['tag']}" in run_ids:
            delete_netns(name)
            removed.append(f"network namespace {name}")
    for run_id in run_ids:
        stray = processes_of_run(run_id)
        if stray:
            kill_pids([pid for pid, _ in stray])
            removed.append(f"processes {[pid for pid, _ in stray]}")
    for path in Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}*"):
        if path.name[len(TMP_PREFIX):].split("-", 1)[0] not in run_ids:
            continue
        record = path / "cc-added"
        if record.exists():
            for name in record.read_text().split():
                remove_allowed(name)
            removed.append(f"congestion control {record.read_text().strip()} from the allow list")
        shutil.rmtree(path, ignore_errors=True)
        removed.append(f"temp dir {path}")
    return removed


def _dead_runs() -> list[str]:
    runs = set()
    for name in netns_names():
        match = NAME_RE.match(name)
        if match:
            runs.add(f"{match['pid']}x{match['tag']}")
    for path in Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}*"):
        run_id = path.name[len(TMP_PREFIX):].split("-", 1)[0]
        if RUN_RE.match(run_id):
            runs.add(run_id)
    return sorted(r for r in runs if not pid_alive(int(r.split("x", 1)[0])))


def sweep_stale() -> list[str]:
    """Remove what beds of dead processes left (e.g. a SIGKILLed test run).
    Returns what was removed."""
    return remove_runs(_dead_runs())
