"""The sender's side-channel tasks: what the send form lists from the send folder, the
SHA-256 of files there, and the network check on demand."""

from __future__ import annotations

from pathlib import Path

from agent import netcheck, tuning
from agent.sender.destination import check_destination, parse_destination, pin_certificate
from agent.sender.errors import BadDestination, TransferFailed
from agent.sender.preflight import minio_s3, run_network_check
from agent.tasks import FolderTasks, Handler, TaskRefused
from dtn_protocol.endpoints import Rule
from dtn_protocol.netcheck import Verdict
from dtn_protocol.tasks import TaskKind


def network_check_task(state_dir: Path, limits, s3_factory=None, endpoint_rule=None) -> Handler:
    """`network_check`: the same check a transfer starts with, on demand, for the
    destination the portal gives (with keys, for this answer only)."""

    def handle(params: dict) -> dict:
        try:
            d = parse_destination(params.get("destination"))
        except BadDestination as exc:
            raise TaskRefused(str(exc)) from None
        total, files = params.get("total_bytes"), params.get("files")
        total = total if isinstance(total, int) and total >= 0 else None
        files = files if isinstance(files, int) and files > 0 else (1 if total else None)
        try:
            check_destination(d, endpoint_rule or Rule())
            ca_file = pin_certificate(state_dir, d)
        except TransferFailed as exc:
            return netcheck.refused(d.endpoint, exc.reason, exc.message)
        report = run_network_check(d, ca_file, limits=limits, s3_factory=s3_factory or minio_s3,
                                   total_bytes=total, files=files)
        if report["verdict"] != Verdict.NO_GO and total:
            choice = tuning.choose(tuning.Measured.from_report(report), tuning.FileMix.uniform(files, total))
            netcheck.attach_tuning(report, choice)
        return report

    return handle


def sender_handlers(send_dir: Path, state_dir: Path | None = None, limits=None,
                    endpoint_rule=None) -> dict[str, Handler]:
    folder = FolderTasks(send_dir)
    handlers = {TaskKind.LIST_SEND_FOLDER: folder.list_folder, TaskKind.VERIFY_FILES: folder.verify_files}
    if state_dir is not None:
        handlers[TaskKind.NETWORK_CHECK] = network_check_task(state_dir, limits or netcheck.Limits(),
                                                              endpoint_rule=endpoint_rule)
    return handlers
