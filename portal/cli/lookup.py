"""`dtn` commands that only look: the receivers you may send to, a sender's folder, one transfer, its events."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone

from dtn_protocol.tasks import TaskKind
from dtn_protocol.units import human_bytes
from portal.cli.client import PortalAPI
from portal.cli.output import EXIT_OK, EXIT_TIMEOUT, EXIT_USAGE, Fail, human_time, print_json, table


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def resolve_container(api: PortalAPI, value: str, role: str, option: str) -> str:
    """A container ID as given, or one of your own containers of that role by name."""
    if is_uuid(value):
        return value
    matches = [c for c in api.containers() if c["name"] == value and c["role"] == role]
    if len(matches) != 1:
        found = "no" if not matches else "more than one"
        raise Fail(f"{option}: {found} {role} container of yours is named {value!r}; give its container ID",
                   EXIT_USAGE)
    return matches[0]["container_id"]


def checked_transfer_id(value: str) -> str:
    # Caught here, a typo reads as one; the portal would only say "not found".
    if not is_uuid(value):
        raise Fail(f"{value!r} is not a transfer ID (a UUID, as `dtn transfers` lists them)", EXIT_USAGE)
    return value


def cmd_receivers(api: PortalAPI, args) -> int:
    grants = [g for g in api.grants_received() if g["active"]]
    if args.json:
        print_json(grants)
        return EXIT_OK
    if not grants:
        print("no receiver yet: a receiver's owner grants you the right to send to it")
        return EXIT_OK
    rows = [[g["receiver_id"], g["receiver_name"], g["receiver_owner"], g.get("endpoint") or "-",
             "online" if g.get("receiver_online") else "offline",
             "yes" if g.get("served") == "ok" else (g.get("served") or "not yet")] for g in grants]
    print(table(rows, ["RECEIVER ID", "NAME", "OWNER", "ENDPOINT", "STATUS", "SERVED"]))
    return EXIT_OK


def _answer(api: PortalAPI, task: dict, timeout: float, interval: float = 0.25) -> dict:
    deadline = time.monotonic() + timeout
    while task["state"] == "pending":
        if time.monotonic() >= deadline:
            raise Fail(f"the sender did not answer within {timeout:g} s: is its agent running? "
                       "(`dtn containers` shows whether it is online)", EXIT_TIMEOUT)
        time.sleep(interval)
        task = api.task(task["task_id"])
    return task


def cmd_ls(api: PortalAPI, args) -> int:
    sender, _, path = args.location.partition(":")
    container = resolve_container(api, sender, "sender", "SENDER")
    task = _answer(api, api.ask(container, TaskKind.LIST_SEND_FOLDER, {"path": path or "."}), args.timeout)
    if task["state"] != "answered":
        raise Fail(f"the sender did not answer: the question {task['state']}", EXIT_TIMEOUT)
    if not task["ok"]:
        raise Fail(f"the sender refused: {task['error']}", EXIT_USAGE)
    listing = task["result"]
    if args.json:
        print_json(listing)
        return EXIT_OK
    for entry in listing["entries"]:
        name = entry["name"] + ("/" if entry["type"] == "dir" else "")
        size = human_bytes(entry["size"]) if entry["type"] == "file" else "-"
        print(f"{size:>10}  {human_time(_iso(entry.get('mtime')))}  {name}")
    if not listing["entries"]:
        print(f"{listing['path'] or 'the send folder'} is empty")
    if listing.get("truncated"):
        print("… more entries than one answer holds; list a subfolder")
    return EXIT_OK


def _iso(epoch: int | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, timezone.utc).isoformat()


def cmd_show(api: PortalAPI, args) -> int:
    record = api.transfer(args.transfer_id)
    if args.json:
        print_json(record)
        return EXIT_OK
    source, destination = record["source"], record["destination"]
    files, moved = record["files"], record["bytes"]
    where = (f"{destination.get('container_name')} of {destination.get('owner')}"
             if destination.get("kind") == "container" else destination.get("endpoint"))
    fields = [
        ("transfer", record["transfer_id"]),
        ("label", record.get("label") or "-"),
        ("state", record["state"] + (" (stopping)" if record.get("stop_requested") else "")),
        ("from", f"{source.get('container_name')}: {', '.join(source.get('paths') or [])}"),
        ("to", f"{where} /{destination.get('bucket')}/{destination.get('prefix') or ''}"),
        ("files", f"{files['total']} total, {files['transferred']} sent, {files['skipped']} skipped, "
                  f"{files['failed']} failed, {files['verified']} verified"),
        # The record's figures as the transfer page writes them: sent counts each byte once, re-sent apart.
        ("bytes", f"{human_bytes(moved['total'])} total, {human_bytes(moved['transferred'])} sent, "
                  f"{human_bytes(moved['skipped'])} skipped, {human_bytes(moved['failed'])} failed, "
                  f"{human_bytes(moved.get('resent') or 0)} re-sent, {human_bytes(moved['verified'])} verified"),
        ("attempts", str(record.get("attempts"))),
        ("created", human_time(record.get("created_at"), precise=True)),
        ("started", human_time(record.get("started_at"), precise=True) if record.get("started_at") else "-"),
        ("completed", human_time(record.get("completed_at"), precise=True) if record.get("completed_at") else "-"),
    ]
    fatal = record.get("fatal_error")
    if fatal:
        fields.append(("error", f"{fatal.get('reason')}: {fatal.get('message')}"))
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        print(f"{name.ljust(width)}  {value}")
    return EXIT_OK


def cmd_events(api: PortalAPI, args) -> int:
    events = api.events(args.transfer_id)
    if args.json:
        print_json(events)
        return EXIT_OK
    if not events:
        print("no events yet")
        return EXIT_OK
    rows = [[human_time(e["at"], precise=True), e["kind"], e.get("source") or "", e.get("message") or ""] for e in events]
    print(table(rows, ["AT", "KIND", "SOURCE", "MESSAGE"]))
    return EXIT_OK
