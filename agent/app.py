"""The agent put together, once: the configuration read, rclone started (or its sidecar
found), the portal clients, the side channel and its handlers, the sender's runner, a
receiver site when the agent also receives, and the controller's loop over them. All
that was started is stopped on the way out, whatever ended it; what ended it is the
exit status (docs/agent.md, "Exit statuses"):

    0  asked to stop (SIGTERM/SIGINT), the current command left resumable
    1  an unexpected error (a bug: the log has the traceback)
    2  the configuration is wrong, or rclone cannot start
    3  the portal refused the agent token: a supervisor must not restart in a loop
"""

from __future__ import annotations

import functools
import logging
import shutil
import signal
import socket
import sys
import time

from agent import __version__, config as config_module, health, logs, tcptune
from agent.identity import instance_id, lock_state_dir
from agent.loop.controller import Controller, ShutdownNow
from agent.loop.portal import PortalClient, PortalError, TokenRejected
from agent.loop.sidechannel import SideChannel
from agent.rclone import RcClient, RcdProcess, RcError
from agent.sender import TransferRunner
from agent.sender.tasks import sender_handlers
from dtn_protocol.tasks import TaskKind

log = logging.getLogger("agent")
# Distinct, so a supervisor can tell them apart.
EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_TOKEN_REJECTED = 3


def main(check_only: bool = False) -> int:
    try:
        config = config_module.load()
        config_module.prepare_state_dir(config.state_dir)
        lock_state_dir(config.state_dir)
        identity = instance_id(config.state_dir)
    except config_module.ConfigError as exc:
        print(f"dtn-agent: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    logs.setup(config.log_level, config.log_format)
    for secret in (config.agent_token, config.rclone_rc_pass, getattr(config.receiver, "root_password", None)):
        if secret is not None:
            logs.redact(secret.reveal())
    if check_only:
        print("dtn-agent: configuration is valid")
        return EXIT_OK
    log.info("dtn-agent %s, instance %s, portal %s, send folder %s, receive folder %s", __version__, identity,
             config.portal_url, config.send_dir, getattr(config.receiver, "receive_dir", None))
    if isinstance(config.receiver, config_module.MinioReceiverConfig):
        log.info("grants are served by MinIO at %s", config.receiver.url)
    agent = Agent(config, identity)
    try:
        agent.start()
        agent.controller.run()
    except RcloneWontStart as exc:
        log.error("%s", exc)
        return EXIT_CONFIG
    except ShutdownNow:
        pass
    except TokenRejected as exc:
        log.error("%s: the token was revoked or rotated; register the agent again or set the new token."
                  " Exiting with status %d.", exc, EXIT_TOKEN_REJECTED)
        return EXIT_TOKEN_REJECTED
    finally:
        agent.stop()
    log.info("stopped")
    return EXIT_OK


class RcloneWontStart(Exception):
    pass


class Agent:
    def __init__(self, config: config_module.Config, identity: str):
        self.config = config
        # A client (a requests session) per thread that talks to the portal: the loop, the side channel's
        # worker answering tasks, and its long-poll, all at once.
        self.new_portal_client = functools.partial(
            PortalClient, config.portal_url, config.agent_token.reveal(), identity,
            verify=str(config.portal_ca_file) if config.portal_ca_file else True,
            user_agent=f"dtn-agent/{__version__}")
        self.rcd: RcdProcess | None = None
        self.rc: RcClient | None = None
        self.site = None
        self.side: SideChannel | None = None
        self.controller: Controller | None = None

    def start(self) -> None:
        config = self.config
        self.rc = self._rclone()
        portal = self.new_portal_client()
        handlers = (sender_handlers(config.send_dir, config.state_dir, config.network_limits, config.endpoint_rule)
                    if config.send_dir is not None else {})
        if config.receiver is not None:
            # Only a receiver loads the certificate machinery (cryptography): a sender's memory stays small.
            from agent.receiver.site import ReceiverSite

            self.site = ReceiverSite(config.rclone_binary, config.receiver, config.state_dir)
            handlers[TaskKind.VERIFY_RECEIVED] = self.site.verify_received
            handlers[TaskKind.LIST_RECEIVED] = self.site.list_received
        answers = self.new_portal_client()
        self.side = SideChannel(answers, handlers, poller=self.new_portal_client())
        self.side.start()
        runner = None
        if config.send_dir is not None:
            runner = TransferRunner(self.rc, send_dir=config.send_dir, state_dir=config.state_dir,
                                    transfers=config.transfers, receiver_attempts=config.receiver_attempts,
                                    receiver_retry_seconds=config.receiver_retry_seconds,
                                    progress_seconds=config.progress_seconds,
                                    network_limits=config.network_limits, tune=config.tune,
                                    endpoint_rule=config.endpoint_rule, resume_cutoff=config.resume_cutoff)
        self.controller = Controller(portal=portal, runner=runner, side=self.side, describe=self.describe,
                                     heartbeat_marker=lambda seconds: health.mark(config.state_dir, seconds))
        if self.site is not None:
            self.controller.after_beat = lambda reply: self._serve_grants(portal, reply)
            self.side.register(TaskKind.SYNC_GRANTS, lambda params: self._grants_changed(answers))
        _install_signals(self.controller)

    def _rclone(self) -> RcClient | None:
        config = self.config
        if config.send_dir is None:
            return None  # a site that only receives moves no data itself: no rclone rcd
        if not config.embedded_rcd:
            # The sidecar may still be starting: transfers wait for it, the heartbeat says it is down.
            return RcClient(config.rclone_rc_url, config.rclone_rc_user, config.rclone_rc_pass.reveal())
        self.rcd = RcdProcess(config.rclone_binary, config.state_dir, verbose=config.log_level == "DEBUG")
        try:
            return self.rcd.start()
        except RuntimeError as exc:
            raise RcloneWontStart(str(exc)) from None

    def stop(self) -> None:
        if self.side is not None:
            self.side.stop()
        if self.rcd is not None:
            self.rcd.stop()
        if self.site is not None:
            self.site.stop()

    def describe(self) -> dict:
        """The heartbeat body: versions, disk, and how the parts are doing; a
        receiver adds its address, its certificate and each grant's health."""
        health = {"command": self.controller.current_command, "side_channel": sorted(self.side.handlers),
                  "tcp": tcp_health()}
        version = ""
        if self.rc is not None:
            try:
                version = self.rc.version()
                health["rclone"] = "ok"
            except RcError as exc:
                health["rclone"] = f"unavailable: {exc.message}"
        if self.rcd is not None:
            health["rclone_restarts"] = self.rcd.restarts
        free = None
        if self.config.send_dir is not None:
            try:
                free = shutil.disk_usage(self.config.send_dir).free
            except OSError:
                pass
        body = {"agent_version": __version__, "rclone_version": version[:40], "hostname": socket.gethostname()[:255],
                "disk_free_bytes": free, "health": health}
        if self.site is not None:
            described = self.site.describe()
            health.update(described.pop("health"))
            body.update(described)
            health["grants_served"] = sum(1 for word in health.get("grants", {}).values() if word == "ok")
        return body

    def _serve_grants(self, portal: PortalClient, reply: dict) -> bool:
        if reply.get("role") not in ("receiver", "both"):
            return False
        try:
            changed = self.site.refresh(portal)
        except (PortalError, OSError, RuntimeError) as exc:
            # Keep serving what was granted before; the next heartbeat tries again.
            log.warning("could not sync the receiver's grants: %s", exc)
            return False
        for secret in self.site.secrets():
            logs.redact(secret)
        return changed

    def _grants_changed(self, portal: PortalClient) -> dict:
        """The portal's word (side channel) that this receiver's grants changed: serve exactly them now,
        so a revoked key reaches nothing within seconds, and report the grants' health at once."""
        changed = self._serve_grants(portal, {"role": "receiver"})
        log.info("the portal says the grants changed: synced%s", ", reporting their health" if changed else "")
        if changed:
            portal.heartbeat(self.describe())
        return {"health_changed": changed}


# They change only when a site's tcp-tune runs (at its start, perhaps just after the agent's): read again every
# half minute, not on every beat (each reading is a route dump, the first one pyroute2's import too).
TCP_READ_EVERY_S = 30.0
_tcp_read: tuple[float, dict] | None = None


def tcp_health(clock=time.monotonic) -> dict:
    """The TCP settings a connection made here gets, and which of the box's tuning they include: read, never
    changed (a local process must not tune the host; a compose site's tcp-tune did it in its namespace)."""
    global _tcp_read
    if _tcp_read is None or clock() - _tcp_read[0] > TCP_READ_EVERY_S:
        _tcp_read = (clock(), _read_tcp())
    return _tcp_read[1]


def _read_tcp() -> dict:
    settings = tcptune.in_effect()
    return {"congestion_control": settings["congestion_control"],
            "default_congestion_control": settings["default_congestion_control"],
            "tcp_rmem": settings["tcp_rmem"], "tcp_wmem": settings["tcp_wmem"], "tuned": tcptune.tuned(settings)}


def _install_signals(controller: Controller) -> None:
    def stop(signum, frame):
        # No logging here: the handler may run in the middle of a log write, and a
        # reentrant write would fail before the flag is set. The loop logs it.
        controller.request_shutdown(signal.Signals(signum).name)
        if controller.interruptible:
            raise ShutdownNow()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
