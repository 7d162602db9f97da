"""agent/tcptune.py in network namespaces of the test's own (root): a route's congestion control is
what a connection gets, also where the host's allowed list would refuse it as the namespace's
default; an algorithm the kernel lacks changes nothing and fails nothing; the host is untouched."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from agent import tcptune

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
HOST = Path("/proc/sys/net/ipv4")


def ns_run(ns: str, *argv: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=60, **kwargs)


@pytest.fixture
def pair():
    """Two namespaces joined by a veth, 10.251.x.1 and 10.251.x.2, a default route in the first."""
    tag = secrets.token_hex(3)
    a, b = f"dtn-tt-{tag}-a", f"dtn-tt-{tag}-b"
    net = f"10.251.{int(tag[:2], 16)}"
    steps = [["ip", "netns", "add", a], ["ip", "netns", "add", b],
             ["ip", "link", "add", "tta", "netns", a, "type", "veth", "peer", "name", "ttb", "netns", b],
             ["ip", "-n", a, "addr", "add", f"{net}.1/24", "dev", "tta"],
             ["ip", "-n", b, "addr", "add", f"{net}.2/24", "dev", "ttb"],
             ["ip", "-n", a, "link", "set", "tta", "up"], ["ip", "-n", b, "link", "set", "ttb", "up"],
             ["ip", "-n", a, "link", "set", "lo", "up"], ["ip", "-n", a, "route", "add", "default", "via", f"{net}.2"]]
    try:
        for step in steps:
            subprocess.run(step, check=True, capture_output=True)
        yield a, b, net
    finally:
        subprocess.run(["ip", "netns", "del", a], capture_output=True)
        subprocess.run(["ip", "netns", "del", b], capture_output=True)


def apply_in(ns: str, **env) -> subprocess.CompletedProcess:
    return ns_run(ns, sys.executable, "-m", "agent.tcptune", "--apply",
                  env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), **env})


def connection_cc(a: str, b: str, net: str) -> str:
    """The congestion control `ss` shows for a connection from `a` to `b`."""
    server = subprocess.Popen(["ip", "netns", "exec", b, sys.executable, "-c",
                               f"import socket,time\ns=socket.create_server(('{net}.2', 5101))\n"
                               "c,_=s.accept()\ntime.sleep(2)"])
    try:
        probe = ns_run(a, sys.executable, "-c",
                       "import socket,subprocess,time\n"
                       "for _ in range(50):\n"
                       "    try:\n"
                       f"        c=socket.create_connection(('{net}.2', 5101)); break\n"
                       "    except OSError: time.sleep(0.05)\n"
                       "c.send(b'x'*65536); time.sleep(0.2)\n"
                       f"print(subprocess.run(['ss','-tin','dst','{net}.2'],capture_output=True,text=True).stdout)")
        for name in ("bbr", "cubic", "reno"):
            if f" {name} " in f" {probe.stdout} ".replace("\n", " ").replace("\t", " "):
                return name
        raise AssertionError(probe.stdout + probe.stderr)
    finally:
        server.wait(timeout=10)


def test_the_routes_congestion_control_is_what_a_connection_gets_whatever_the_allowed_list(pair):
    a, b, net = pair
    allowed = (HOST / "tcp_allowed_congestion_control").read_text().split()
    available = (HOST / "tcp_available_congestion_control").read_text().split()
    # One the namespace may not take as its default (not in the host's allowed list), if the kernel has one.
    target = next((name for name in available if name not in allowed), "bbr")
    if target not in allowed:
        refused = ns_run(a, "sysctl", "-w", f"net.ipv4.tcp_congestion_control={target}")
        assert refused.returncode != 0 and "not permitted" in refused.stderr
    host_before = {name: (HOST / name).read_text() for name in ("tcp_congestion_control", "tcp_rmem", "tcp_wmem")}
    done = apply_in(a, DTN_TCP_CONGESTION_CONTROL=target)
    assert done.returncode == 0, done.stderr
    assert f"congestion control {target}: applied on " in done.stdout
    assert "tcp_rmem 4096 131072 67108864: applied" in done.stdout
    assert connection_cc(a, b, net) == target
    settings = ns_run(a, sys.executable, "-c", "import json; from agent import tcptune; "
                      "print(json.dumps(tcptune.in_effect()))",
                      env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert f'"congestion_control": "{target}"' in settings.stdout and "67108864" in settings.stdout
    assert {name: (HOST / name).read_text() for name in host_before} == host_before


def test_an_algorithm_the_kernel_lacks_changes_nothing_and_fails_nothing(pair):
    a, b, net = pair
    before = connection_cc(a, b, net)
    done = apply_in(a, DTN_TCP_CONGESTION_CONTROL="nosuchcc")
    assert done.returncode == 0
    assert "congestion control nosuchcc: not applied" in done.stdout
    assert connection_cc(a, b, net) == before


def test_turned_off_it_changes_nothing(pair):
    a, _, _ = pair
    routes = ns_run(a, "ip", "route").stdout
    done = apply_in(a, DTN_TCP_TUNING="false")
    assert done.returncode == 0 and "DTN_TCP_TUNING=false: nothing changed" in done.stdout
    assert ns_run(a, "ip", "route").stdout == routes


def test_what_is_in_effect_names_the_tunings_settings():
    settings = tcptune.in_effect()
    assert set(settings) >= {"congestion_control", "tcp_rmem", "tcp_wmem", "available_congestion_control"}
    assert set(tcptune.tuned(settings)) == {"congestion_control", "tcp_rmem", "tcp_wmem"}
    assert tcptune.tuned({"congestion_control": "bbr", "tcp_rmem": [1, 2, 2**26], "tcp_wmem": [1, 2, 2**22]}) == \
        {"congestion_control": True, "tcp_rmem": True, "tcp_wmem": False}
