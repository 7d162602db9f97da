"""`python -m agent` / `dtn-agent`: wire the parts together and map what ends
the agent to an exit status (EXIT_* below):

    0  asked to stop (SIGTERM/SIGINT), the current command left resumable
    1  an unexpected error (a bug: the log has the traceback)
    2  the configuration is wrong, or rclone cannot start
    3  the portal refused the agent token: a supervisor must not restart in a loop
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from agent import __version__, config as config_module, health, logs
from agent.loop.controller import Controller, ShutdownNow
from agent.loop.portal import PortalClient, PortalError, TokenRejected
from agent.rclone import RcClient, RcdProcess, RcError
from agent.loop.sidechannel import SideChannel
from agent.sender import TransferRunner
from agent.sender.tasks import sender_handlers
from dtn_protocol.tasks import TaskKind

if TYPE_CHECKING:
    from agent.receiver import ReceiverSite

log = logging.getLogger("agent")
# Distinct, so a supervisor can tell them apart.
EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_TOKEN_REJECTED = 3
INSTANCE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


_state_lock = None


def lock_state_dir(state_dir: Path) -> None:
    """Hold the state directory for this process's life. Two processes on one
    directory would share one instance_id, so both would hold the same lease
    and run the same command; the second is refused instead. The kernel drops
    the lock when the process dies, SIGKILL included."""
    global _state_lock
    handle = open(state_dir / "agent.lock", "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise config_module.ConfigError(
            f"another agent is running with DTN_STATE_DIR={state_dir}; give each agent its own") from None
    _state_lock = handle


def instance_id(state_dir: Path) -> str:
    """This agent's identity for leases, kept across restarts (docs/protocol.md)."""
    path = state_dir / "instance_id"
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        value = ""
    if value:
        if not INSTANCE_ID.match(value):
            raise config_module.ConfigError(f"{path} holds no valid instance id; delete it to make a new one")
        return value
    value = secrets.token_hex(16)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return instance_id(state_dir)  # another process made it first
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dtn-agent", description="The DTN-in-a-Box agent (see docs/agent.md).")
    parser.add_argument("--version", action="version", version=f"dtn-agent {__version__}")
    parser.add_argument("--check-config", action="store_true", help="check the configuration and exit")
    args = parser.parse_args(argv)

    try:
        config = config_module.load()
        config_module.prepare_state_dir(config.state_dir)
        lock_state_dir(config.state_dir)
        identity = instance_id(config.state_dir)
    except config_module.ConfigError as exc:
        print(f"dtn-agent: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    logs.setup(config.log_level)
    logs.redact(config.agent_token.reveal())
    if config.rclone_rc_pass is not None:
        logs.redact(config.rclone_rc_pass.reveal())
    if isinstance(config.receiver, config_module.MinioReceiverConfig):
        logs.redact(config.receiver.root_password.reveal())
    if args.check_config:
        print("dtn-agent: configuration is valid")
        return EXIT_OK
    log.info("dtn-agent %s, instance %s, portal %s, send folder %s, receive folder %s", __version__, identity,
             config.portal_url, config.send_dir, getattr(config.receiver, "receive_dir", None))
    if isinstance(config.receiver, config_module.MinioReceiverConfig):
        log.info("grants are served by MinIO at %s", config.receiver.url)
    return _run(config, identity)


def _run(config: config_module.Config, identity: str) -> int:
    rcd = None
    side = None
    site = None
    rc = None
    verify = str(config.portal_ca_file) if config.portal_ca_file else True
    token = config.agent_token.reveal()
    try:
        if config.send_dir is None:
            pass  # a site that only receives moves no data itself: no rclone rcd
        elif config.embedded_rcd:
            rcd = RcdProcess(config.rclone_binary, config.state_dir, verbose=config.log_level == "DEBUG")
            try:
                rc = rcd.start()
            except RuntimeError as exc:
                log.error("%s", exc)
                return EXIT_CONFIG
        else:
            # The sidecar may still be starting: transfers wait for it, the heartbeat says it is down.
            rc = RcClient(config.rclone_rc_url, config.rclone_rc_user, config.rclone_rc_pass.reveal())
        portal = PortalClient(config.portal_url, token, identity, verify=verify,
                              user_agent=f"dtn-agent/{__version__}")
        # Clients of their own (a requests session per thread): the side channel answers and
        # long-polls while the loop claims or reports.
        handlers = (sender_handlers(config.send_dir, config.state_dir, config.network_limits)
                    if config.send_dir is not None else {})
        if config.receiver is not None:
            # Only a receiver loads the certificate machinery (cryptography): a sender's memory stays small.
            from agent.receiver import ReceiverSite

            site = ReceiverSite(config.rclone_binary, config.receiver, config.state_dir)
            handlers[TaskKind.VERIFY_RECEIVED] = site.verify_received
        answers = PortalClient(config.portal_url, token, identity, verify=verify, user_agent=f"dtn-agent/{__version__}")
        side = SideChannel(answers,
                           handlers,
                           poller=PortalClient(config.portal_url, token, identity, verify=verify,
                                               user_agent=f"dtn-agent/{__version__}"))
        side.start()
        runner = None
        if config.send_dir is not None:
            runner = TransferRunner(rc, send_dir=config.send_dir, state_dir=config.state_dir,
                                    transfers=config.transfers, receiver_attempts=config.receiver_attempts,
                                    receiver_retry_seconds=config.receiver_retry_seconds,
                                    progress_seconds=config.progress_seconds,
                                    network_limits=config.network_limits, tune=config.tune)
        controller = Controller(portal=portal, runner=runner, side=side,
                                heartbeat_marker=lambda seconds: health.mark(config.state_dir, seconds))
        controller.describe = lambda: describe(config, rc, rcd, controller, side, site)
        if site is not None:
            controller.after_beat = lambda reply: _serve_grants(site, portal, reply)
            side.register(TaskKind.SYNC_GRANTS, lambda params: _grants_changed(site, answers, controller.describe))
        _install_signals(controller)
        try:
            controller.run()
        except ShutdownNow:
            pass
        log.info("stopped")
        return EXIT_OK
    except TokenRejected as exc:
        log.error("%s: the token was revoked or rotated; register the agent again or set the new token."
                  " Exiting with status %d.", exc, EXIT_TOKEN_REJECTED)
        return EXIT_TOKEN_REJECTED
    finally:
        if side is not None:
            side.stop()
        if rcd is not None:
            rcd.stop()
        if site is not None:
            site.stop()


def _serve_grants(site: "ReceiverSite", portal: PortalClient, reply: dict) -> bool:
    if reply.get("role") not in ("receiver", "both"):
        return False
    try:
        changed = site.refresh(portal)
    except (PortalError, OSError, RuntimeError) as exc:
        # Keep serving what was granted before; the next heartbeat tries again.
        log.warning("could not sync the receiver's grants: %s", exc)
        return False
    for secret in site.secrets():
        logs.redact(secret)
    return changed


def _grants_changed(site: "ReceiverSite", portal: PortalClient, describe_now) -> dict:
    """The portal's word (side channel) that this receiver's grants changed: serve exactly them now,
    so a revoked key is refused within seconds, and report where a new grant is served at once."""
    changed = _serve_grants(site, portal, {"role": "receiver"})
    log.info("the portal says the grants changed: synced%s", ", reporting the new endpoints" if changed else "")
    if changed:
        portal.heartbeat(describe_now())
    return {"endpoints_changed": changed}


def describe(config, rc, rcd, controller, side, site=None) -> dict:
    """The heartbeat body: versions, disk, and how the parts are doing; a
    receiver adds its certificate and where it serves each grant."""
    health = {"command": controller.current_command, "side_channel": sorted(side.handlers)}
    version = ""
    if rc is not None:
        try:
            version = rc.version()
            health["rclone"] = "ok"
        except RcError as exc:
            health["rclone"] = f"unavailable: {exc.message}"
    if rcd is not None:
        health["rclone_restarts"] = rcd.restarts
    free = None
    if config.send_dir is not None:
        try:
            free = shutil.disk_usage(config.send_dir).free
        except OSError:
            pass
    body = {"agent_version": __version__, "rclone_version": version[:40], "hostname": socket.gethostname()[:255],
            "disk_free_bytes": free, "health": health}
    if site is not None:
        described = site.describe()
        health.update(described.pop("health"))
        body.update(described)
        health["grants_served"] = len(body["grants"])
    return body


def _install_signals(controller: Controller) -> None:
    def stop(signum, frame):
        # No logging here: the handler may run in the middle of a log write, and a
        # reentrant write would fail before the flag is set. The loop logs it.
        controller.request_shutdown(signal.Signals(signum).name)
        if controller.interruptible:
            raise ShutdownNow()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


if __name__ == "__main__":
    sys.exit(main())
