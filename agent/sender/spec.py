"""What a `transfer` command asks (docs/protocol.md), checked before anything is done."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from agent.sender.destination import Destination, parse_destination
from agent.sender.errors import BadDestination, TransferFailed
from dtn_protocol.failures import FailureReason
from dtn_protocol.options import DEFAULT_CHECK_MODE, DEFAULT_OVERWRITE, TUNING_BOUNDS, CheckMode, Overwrite
from dtn_protocol.states import CommandState

_BWLIMIT = re.compile(r"^(\d+(?:\.\d+)?)([BKMGTPbkmgtp]?)i?$")


def bandwidth_rate(text: str | None) -> float | None:
    """rclone's bandwidth limit in the form the command carries ("50M", "512k", "1.5Gi"; no unit: KiB) in
    bytes/s, for what the agent sends itself (rclone reads the text); None for no limit."""
    match = _BWLIMIT.match(text.strip()) if text else None
    if match is None:
        return None
    return float(match.group(1)) * 1024 ** "BKMGTP".index(match.group(2).upper() or "K")


@dataclass(frozen=True)
class Spec:
    command_id: str
    attempt: int
    sources: tuple[str, ...]
    destination: Destination
    verify_checksums: bool
    overwrite: str
    bandwidth_limit: str | None
    resumed: bool
    base_progress: dict
    network_check: str = DEFAULT_CHECK_MODE
    tuning: dict = field(default_factory=dict)

    @property
    def bandwidth_bytes(self) -> float | None:
        return bandwidth_rate(self.bandwidth_limit)


def parse_command(command: dict) -> Spec:
    """The command's payload, checked. A malformed command is the portal's bug: agent_error."""
    def bad(message):
        return TransferFailed(FailureReason.AGENT_ERROR, f"malformed transfer command: {message}")

    payload = command.get("payload") or {}
    sources = payload.get("sources")
    if not isinstance(sources, list) or not sources or not all(isinstance(s, str) for s in sources):
        raise bad("'sources' must be a non-empty list of paths")
    try:
        destination = parse_destination(payload.get("destination"))
    except BadDestination as exc:
        raise bad(str(exc)) from None
    options = payload.get("options") or {}
    overwrite = options.get("overwrite", DEFAULT_OVERWRITE)
    if overwrite not in tuple(Overwrite):
        raise bad(f"options.overwrite must be one of {', '.join(Overwrite)}, not {overwrite!r}")
    limit = options.get("bandwidth_limit") or None
    if limit is not None and (not isinstance(limit, str) or not _BWLIMIT.match(limit.strip())):
        raise bad(f"options.bandwidth_limit is not a rate like '50M': {limit!r}")
    mode = options.get("network_check") or DEFAULT_CHECK_MODE
    if mode not in tuple(CheckMode):
        raise bad(f"options.network_check must be one of {', '.join(CheckMode)}, not {mode!r}")
    overrides = {}
    for name, (low, high) in TUNING_BOUNDS.items():
        value = options.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise bad(f"options.{name} must be a whole number from {low} to {high}, not {value!r}")
        overrides[name] = value
    progress = command.get("progress") or {}
    return Spec(
        command_id=str(command["command_id"]),
        attempt=int(command.get("attempt") or 1),
        sources=tuple(sources),
        destination=destination,
        verify_checksums=bool(options.get("verify_checksums", True)),
        overwrite=overwrite,
        bandwidth_limit=limit.strip() if limit else None,
        resumed=command.get("state") == CommandState.RUNNING or int(command.get("attempt") or 1) > 1,
        # Claimed back by this instance after a restart: the portal still has it running and counts from
        # our last report. A fresh lease (even of a requeued command) counts from zero.
        base_progress=progress if command.get("state") == CommandState.RUNNING and isinstance(progress, dict) else {},
        network_check=mode,
        tuning=overrides,
    )
