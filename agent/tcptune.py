"""TCP tuned for long, fat paths inside a site's own network namespace, and the settings in effect
read wherever the agent runs.

Since Linux 4.15 the congestion control and the TCP buffer limits are per network namespace, so a
compose site can tune its own containers without touching the host:

- **Buffer limits** (`net.ipv4.tcp_rmem` / `tcp_wmem`, ESnet fasterdata's host tuning: autotuning up
  to 64 MiB, a 10 Gbit/s path at 50 ms) come from the compose file's `sysctls:`, which docker sets
  when it makes the namespace; they exist on every kernel since 4.15, so that never fails.
- **Congestion control**: BBR keeps its rate under random loss where cubic collapses (one cubic stream
  carried ~0.4 MB/s on the bench's 0.5%-loss 50 ms link, BBR ~23 MB/s). A namespace may only take a
  default the host's `tcp_allowed_congestion_control` lists (most hosts: `reno cubic`), and docker
  fails the container's start when a `sysctls:` value is refused. A route's own congestion control
  (`congctl`, RTAX_CC_ALGO) has no such list: `python -m agent.tcptune --apply`, run once by the
  compose file's `tcp-tune` service in the site's namespace (it needs NET_ADMIN there, nothing on
  the host), sets it on every route of the main table, both for the connections the site opens and
  the ones it accepts. Where the kernel has no BBR it says so and changes nothing: the start goes on.

As a local process (`make demo`, `make run`) nothing here is ever applied: the agent only reads what
is in effect, reports it in its heartbeat and its network checks, and advises."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

PROC = Path("/proc/sys/net/ipv4")
CONGESTION_CONTROL = "bbr"
# autotuning's min, default and max, in bytes
TCP_RMEM = (4096, 131072, 64 * 1024 * 1024)
TCP_WMEM = (4096, 65536, 64 * 1024 * 1024)
MAIN_TABLE = 254


def _read(name: str) -> str | None:
    try:
        return (PROC / name).read_text().strip()
    except OSError:
        return None


def _triple(name: str) -> list[int] | None:
    value = _read(name)
    try:
        return [int(part) for part in value.split()] if value else None
    except ValueError:
        return None


def _site_routes(ipr):
    """The routes of the main table that carry a site's traffic, with their family: unicast only (local and
    broadcast routes carry no traffic out), IPv6 link-local left out (no site traffic goes there, and a
    device may hold a second one a replace does not reach: the test bed's tun device did)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        for route in ipr.get_routes(family=family, table=MAIN_TABLE):
            if route["type"] != 1:
                continue
            if family == socket.AF_INET6 and str(route.get_attr("RTA_DST") or "").startswith("fe80:"):
                continue
            yield family, route


def route_congestion_control() -> list[str] | None:
    """The congestion control each route of the main table names ('' for none); None when the routes
    cannot be read here (pyroute2 missing, no netlink)."""
    try:
        from pyroute2 import IPRoute
    except ImportError:
        return None
    found = []
    try:
        with IPRoute() as ipr:
            for _, route in _site_routes(ipr):
                metrics = route.get_attr("RTA_METRICS")
                found.append(dict(metrics.get("attrs", [])).get("RTAX_CC_ALGO", "") if metrics else "")
    except Exception:  # noqa: BLE001 - netlink's own errors (a dump interrupted by a route change) too
        return None
    return found


def congestion_control_to(address: str) -> str | None:
    """The congestion control the route to `address` names ('' for none: the namespace's default applies);
    None when it cannot be read (pyroute2 missing, no route)."""
    try:
        from pyroute2 import IPRoute
    except ImportError:
        return None
    try:
        with IPRoute() as ipr:
            route = ipr.route("get", dst=address)[0]
    except Exception:  # noqa: BLE001 - netlink's own errors as much as OSError: unknown is the answer
        return None
    metrics = route.get_attr("RTA_METRICS")
    return dict(metrics.get("attrs", [])).get("RTAX_CC_ALGO", "") if metrics else ""


def in_effect() -> dict:
    """What a connection made here gets: the namespace's default congestion control, the one its
    routes name (which wins), and the buffer limits."""
    routes = route_congestion_control()
    default = _read("tcp_congestion_control")
    named = sorted(set(routes or []))
    effective = named[0] if named and len(named) == 1 and named[0] else default
    return {
        "congestion_control": effective,
        "default_congestion_control": default,
        "route_congestion_control": named if routes is not None else None,
        "available_congestion_control": (_read("tcp_available_congestion_control") or "").split(),
        "allowed_congestion_control": (_read("tcp_allowed_congestion_control") or "").split(),
        "tcp_rmem": _triple("tcp_rmem"),
        "tcp_wmem": _triple("tcp_wmem"),
    }


def tuned(settings: dict) -> dict:
    """Which of the tuning's settings are in effect: {name: True/False}."""
    rmem, wmem = settings.get("tcp_rmem") or [0, 0, 0], settings.get("tcp_wmem") or [0, 0, 0]
    return {"congestion_control": settings.get("congestion_control") == CONGESTION_CONTROL,
            "tcp_rmem": rmem[2] >= TCP_RMEM[2], "tcp_wmem": wmem[2] >= TCP_WMEM[2]}


def apply(congestion_control: str = CONGESTION_CONTROL) -> list[str]:
    """Tune this namespace; a sentence per setting. Never raises for what the host cannot do."""
    said = []
    for name, wanted in (("tcp_rmem", TCP_RMEM), ("tcp_wmem", TCP_WMEM)):
        current = _triple(name)
        if current and current[2] >= wanted[2]:
            said.append(f"{name} {' '.join(map(str, current))}: already in effect")
            continue
        try:
            (PROC / name).write_text(" ".join(map(str, wanted)))
            said.append(f"{name} {' '.join(map(str, wanted))}: applied")
        except OSError as exc:
            # In a container /proc/sys is read-only: the compose file's `sysctls:` sets these.
            said.append(f"{name}: left at {current} ({exc.strerror})")
    said.append(_apply_route_congestion_control(congestion_control))
    return said


def _apply_route_congestion_control(algorithm: str) -> str:
    try:
        from pyroute2 import IPRoute
        from pyroute2.netlink.exceptions import NetlinkError
    except ImportError:
        return "congestion control: left as it is (pyroute2 is not installed)"
    changed = 0
    try:
        with IPRoute() as ipr:
            for family, route in list(_site_routes(ipr)):
                ipr.route("replace", **_route_spec(route, family), metrics={"cc_algo": algorithm})
                changed += 1
    except NetlinkError as exc:
        # ENOENT: the kernel has no such module; EPERM: no NET_ADMIN in this namespace.
        return f"congestion control {algorithm}: not applied ({os.strerror(exc.code)}); left as it is"
    except OSError as exc:
        return f"congestion control {algorithm}: not applied ({exc.strerror}); left as it is"
    return f"congestion control {algorithm}: applied on {changed} route(s)"


def _route_spec(route, family: int) -> dict:
    wildcard = "0.0.0.0" if family == socket.AF_INET else "::"
    spec = {"dst": f"{route.get_attr('RTA_DST') or wildcard}/{route['dst_len']}", "table": MAIN_TABLE,
            "family": family, "scope": route["scope"], "proto": route["proto"], "type": route["type"]}
    for attr, key in (("RTA_OIF", "oif"), ("RTA_GATEWAY", "gateway"), ("RTA_PREFSRC", "prefsrc"),
                      ("RTA_PRIORITY", "priority")):
        value = route.get_attr(attr)
        if value is not None:
            spec[key] = value
    return spec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.tcptune", description=__doc__.split("\n\n")[0])
    parser.add_argument("--apply", action="store_true",
                        help="tune this network namespace (as the compose files' tcp-tune service does)")
    args = parser.parse_args(argv)
    if args.apply:
        enabled = os.environ.get("DTN_TCP_TUNING", "true")
        if enabled not in ("true", "false"):
            print(f"tcp-tune: DTN_TCP_TUNING must be 'true' or 'false', not {enabled!r}", file=sys.stderr)
            return 2
        if enabled == "false":
            print("tcp-tune: DTN_TCP_TUNING=false: nothing changed")
        else:
            for line in apply(os.environ.get("DTN_TCP_CONGESTION_CONTROL") or CONGESTION_CONTROL):
                print(f"tcp-tune: {line}")
    settings = in_effect()
    print(f"tcp-tune: in effect: congestion control {settings['congestion_control']},"
          f" tcp_rmem {settings['tcp_rmem']}, tcp_wmem {settings['tcp_wmem']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
