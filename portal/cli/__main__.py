"""`dtn`: send, watch, stop and restart transfers from a terminal or a script."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shutil
import socket
import sys
import time
from importlib import metadata
from pathlib import Path

import shtab

from dtn_protocol.options import Overwrite
from dtn_protocol.states import TransferState
from dtn_protocol.units import human_bytes
from portal.cli import config, lookup
from portal.cli.client import APIError, PortalAPI
from portal.cli.lookup import checked_transfer_id, resolve_container
from portal.cli.output import (EXIT_AUTH, EXIT_OK, EXIT_TIMEOUT, EXIT_TRANSFER_FAILED, EXIT_UNREACHABLE,
                               EXIT_USAGE, Fail, human_time, print_json, table)
from portal.cli.progress import FINISHED, final_line, progress_line

EXIT_CODES = """\
exit status:
  0  success (for watch, and send/restart --watch: the transfer succeeded)
  1  the transfer failed or was canceled
  2  usage or configuration error, or a request the portal refused (4xx: its sentence is printed)
  3  authentication error: the portal answered 401 (run `dtn login` again)
  4  timeout: watch --timeout ran out before the transfer finished
  5  the portal is unreachable or answered 5xx

sign-in: `dtn login` stores {portal, token} in $DTN_CONFIG_DIR, $XDG_CONFIG_HOME/dtn or ~/.config/dtn
(credentials.json, mode 0600); DTN_PORTAL and DTN_TOKEN override it. See docs/cli.md."""


def _exit_code_for(exc: APIError) -> int:
    if exc.status is None or exc.status >= 500:
        return EXIT_UNREACHABLE
    if exc.status == 401:
        return EXIT_AUTH
    return EXIT_USAGE


def _api() -> PortalAPI:
    credentials = config.load()
    return PortalAPI(credentials.portal, credentials.token)


# --- login ----------------------------------------------------------------------------------------


def cmd_login(args) -> int:
    password = os.environ.get("DTN_PASSWORD")
    if not password:
        if not sys.stdin.isatty():
            raise Fail("no password: set DTN_PASSWORD or run dtn login in a terminal", EXIT_USAGE)
        password = getpass.getpass(f"password for {args.username} at {args.portal}: ")
    portal = args.portal.rstrip("/")
    if not portal.startswith(("http://", "https://")):
        raise Fail("--portal must be a URL starting with http:// or https://", EXIT_USAGE)
    token = PortalAPI.new_token(portal, args.username, password, name=f"dtn on {socket.gethostname()}"[:100])
    path = config.save(portal, token, args.username)
    if args.json:
        print_json({"portal": portal, "username": args.username, "credentials": str(path)})
    else:
        print(f"signed in to {portal} as {args.username}; token stored in {path}")
    return EXIT_OK


# --- containers and transfers lists ----------------------------------------------------------------


def cmd_containers(args) -> int:
    containers = _api().containers()
    if args.json:
        print_json(containers)
        return EXIT_OK
    if not containers:
        print("no containers yet: register one on the portal")
        return EXIT_OK
    rows = [[c["container_id"], c["name"], c["role"], "online" if c["online"] else "offline",
             human_time(c.get("last_seen_at")), human_bytes(c.get("disk_free_bytes"))] for c in containers]
    print(table(rows, ["CONTAINER ID", "NAME", "ROLE", "STATUS", "LAST SEEN", "DISK FREE"]))
    return EXIT_OK


def cmd_transfers(args) -> int:
    transfers = _api().transfers(state=args.state, limit=args.limit)
    if args.json:
        print_json(transfers)
        return EXIT_OK
    if not transfers:
        print("no transfers")
        return EXIT_OK
    rows = [[t["transfer_id"], t["state"], t.get("label") or "",
             f"{t['files']['transferred'] + t['files']['skipped']}/{t['files']['total']}",
             human_bytes(t["bytes"]["total"]), human_time(t.get("created_at"))] for t in transfers]
    print(table(rows, ["TRANSFER ID", "STATE", "LABEL", "FILES", "SIZE", "CREATED"]))
    return EXIT_OK


# --- send -----------------------------------------------------------------------------------------


def _s3_secret() -> str:
    secret = os.environ.get("DTN_S3_SECRET_KEY")
    if secret:
        return secret
    if not sys.stdin.isatty():
        raise Fail("the S3 secret key comes from DTN_S3_SECRET_KEY or a prompt (never a flag); set it", EXIT_USAGE)
    return getpass.getpass("S3 secret key: ")


def cmd_send(args) -> int:
    s3_given = any(getattr(args, name) is not None for name in ("s3_host", "s3_port", "s3_bucket", "s3_access_key"))
    if bool(args.to) == s3_given:
        raise Fail("give either --to RECEIVER_ID or the S3 endpoint (--s3-host, --s3-port, --s3-bucket, "
                   "--s3-access-key), not both", EXIT_USAGE)
    api = _api()
    body = {"sender": resolve_container(api, args.sender, "sender", "--from"), "sources": args.paths,
            "prefix": args.prefix, "label": args.label, "verify_checksums": not args.no_verify,
            "bandwidth_limit": args.bwlimit}
    if args.overwrite:
        body["overwrite"] = args.overwrite
    if args.to:
        body["receiver"] = resolve_container(api, args.to, "receiver", "--to")
    else:
        missing = [flag for flag, name in (("--s3-host", "s3_host"), ("--s3-port", "s3_port"),
                                           ("--s3-bucket", "s3_bucket"), ("--s3-access-key", "s3_access_key"))
                   if getattr(args, name) is None]
        if missing:
            raise Fail(f"an S3 endpoint needs {', '.join(missing)} too", EXIT_USAGE)
        body.update(s3_host=args.s3_host, s3_port=args.s3_port, s3_bucket=args.s3_bucket,
                    s3_access_key=args.s3_access_key, s3_tls=not args.s3_no_tls, s3_secret_key=_s3_secret())
    record = api.send(**body)
    if args.watch:
        if not args.json:
            print(f"sent: transfer {record['transfer_id']}", flush=True)
        return watch(api, record["transfer_id"], args)
    if args.json:
        print_json(record)
    else:
        print(f"sent: transfer {record['transfer_id']} is {record['state']}")
        print(f"watch it with: dtn watch {record['transfer_id']}")
    return EXIT_OK


# --- watch ----------------------------------------------------------------------------------------


def watch(api: PortalAPI, transfer_id: str, args) -> int:
    """Poll the status until the transfer finishes or --timeout runs out."""
    tty = sys.stdout.isatty() and not args.json
    started = time.monotonic()
    deadline = started + args.timeout if args.timeout else None
    last_line, last_printed, failing_since = None, 0.0, None
    status = None
    try:
        while True:
            try:
                status = api.status(transfer_id)
                failing_since = None
            except APIError as exc:
                # A portal restart or a network blip is not the end of a long transfer; a portal
                # never reached, or a refusal (401, 404), is an answer now.
                if status is None or _exit_code_for(exc) != EXIT_UNREACHABLE:
                    raise
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since > args.patience:
                    raise
            if status is not None and not args.json:
                line = progress_line(status, with_bar=tty)
                now = time.monotonic()
                if tty:
                    width = max(20, _columns() - 1)
                    sys.stdout.write("\r" + line[:width].ljust(width))
                    sys.stdout.flush()
                elif line != last_line and (now - last_printed >= args.every or status["state"] in FINISHED
                                            or last_line is None):
                    print(line, flush=True)
                    last_line, last_printed = line, now
            if status is not None and status["state"] in FINISHED:
                break
            if deadline is not None and time.monotonic() >= deadline:
                if tty:
                    sys.stdout.write("\n")
                if args.json:
                    print_json({**(status or {}), "timed_out": True})
                else:
                    state = status["state"] if status else "unknown"
                    print(f"timed out after {args.timeout:g} s: transfer {transfer_id} is still {state}",
                          file=sys.stderr)
                return EXIT_TIMEOUT
            sleep = args.interval
            if deadline is not None:
                sleep = max(0.0, min(sleep, deadline - time.monotonic()))
            time.sleep(sleep)
    except KeyboardInterrupt:
        if tty:
            sys.stdout.write("\n")
        print(f"stopped watching; the transfer goes on (dtn watch {transfer_id})", file=sys.stderr)
        return 130
    if tty:
        sys.stdout.write("\n")
    if args.json:
        print_json(api.transfer(transfer_id))
    else:
        print(final_line(status), flush=True)
    return EXIT_OK if status["state"] == TransferState.SUCCEEDED else EXIT_TRANSFER_FAILED


def _columns() -> int:
    # $COLUMNS first, then the terminal's own size; a terminal that reports 0 columns gets 100.
    return shutil.get_terminal_size((100, 24)).columns


def cmd_watch(args) -> int:
    return watch(_api(), args.transfer_id, args)


# --- stop, restart, manifest ----------------------------------------------------------------------


def cmd_stop(args) -> int:
    status = _api().stop(args.transfer_id)
    if args.json:
        print_json(status)
    elif status["state"] in FINISHED:
        print(f"transfer {args.transfer_id} is {status['state']}")
    else:
        print(f"stop requested: transfer {args.transfer_id} stops at its agent's next report")
    return EXIT_OK


def cmd_restart(args) -> int:
    api = _api()
    record = api.restart(args.transfer_id)
    if args.watch:
        if not args.json:
            print(f"restarted: transfer {args.transfer_id}, attempt {record.get('attempts')}", flush=True)
        return watch(api, args.transfer_id, args)
    if args.json:
        print_json(record)
    else:
        print(f"restarted: transfer {args.transfer_id} is {record['state']} (attempt {record.get('attempts')}); "
              "only what is missing or different is sent")
    return EXIT_OK


def cmd_manifest(args) -> int:
    api = _api()
    form = "csv" if args.csv else "json"
    chunks = api.manifest_chunks(args.transfer_id, form)
    if args.output:
        # Written beside the target and renamed at the end: a cut-off download never passes for a manifest.
        target = Path(args.output)
        partial = target.with_name(f".{target.name}.partial")
        size = 0
        try:
            with partial.open("wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    size += len(chunk)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        if args.json:
            print_json({"transfer_id": args.transfer_id, "output": args.output, "bytes": size, "format": form})
        else:
            print(f"manifest of {args.transfer_id} written to {args.output}", file=sys.stderr)
    else:
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
    return EXIT_OK


# --- the parser -----------------------------------------------------------------------------------


def _positive(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return number


def _watch_options(parser, timeout_help: str) -> None:
    parser.add_argument("--timeout", type=_positive, default=None, metavar="S", help=timeout_help)
    parser.add_argument("--interval", type=_positive, default=1.0, metavar="S",
                        help="seconds between polls (default 1)")
    parser.add_argument("--every", type=float, default=10.0, metavar="S",
                        help="when output is not a terminal: at most one progress line per S seconds (default 10)")
    parser.add_argument("--patience", type=float, default=60.0, metavar="S",
                        help="keep polling an unreachable portal this long before giving up (default 60)")


def _version() -> str:
    try:
        return metadata.version("dtn-in-a-box")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def cmd_completion(args) -> int:
    print(shtab.complete(build_parser(), shell=args.shell), end="")
    return EXIT_OK


def _looking(func):
    return lambda args: func(_api(), args)


def build_parser() -> argparse.ArgumentParser:
    # `--json` goes before or after the command: the command's own flag defaults to "not given"
    # (SUPPRESS), so it never overwrites the one given before the command.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable JSON output")
    parser = argparse.ArgumentParser(
        prog="dtn", description="Send and watch transfers on a DTN-in-a-Box portal with a personal API token.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="machine-readable JSON output (before or after COMMAND)")
    parser.add_argument("--version", action="version", version=f"dtn {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name, func, help, **kwargs):
        sub = commands.add_parser(name, parents=[common], help=help, description=help, epilog=EXIT_CODES,
                                  formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)
        sub.set_defaults(func=func)
        return sub

    login = command("login", cmd_login, "exchange your username and password for a personal token, stored 0600")
    login.add_argument("--portal", required=True, help="the portal's URL, e.g. https://dtn.example.org")
    login.add_argument("--username", required=True)

    command("containers", cmd_containers, "list your containers")
    command("receivers", _looking(lookup.cmd_receivers),
            "receivers you may send to (grants you hold): receiver, owner, endpoint, online")
    ls = command("ls", _looking(lookup.cmd_ls), "list what one of your senders' send folder (or a folder in it) holds")
    ls.add_argument("location", metavar="SENDER[:PATH]",
                    help="your sender (its ID or name), and a folder under its send folder (default: the top)")
    ls.add_argument("--timeout", type=_positive, default=30.0, metavar="S",
                    help="wait this long for the sender's answer (default 30; exit 4)")

    transfers = command("transfers", cmd_transfers, "list your transfers, newest first")
    transfers.add_argument("--state", choices=[state.value for state in TransferState])
    transfers.add_argument("--limit", type=int, default=50)

    send = command("send", cmd_send, "send files from one of your sender containers")
    send.add_argument("--from", dest="sender", required=True, metavar="SENDER",
                      help="your sender container: its ID or its name")
    send.add_argument("--to", metavar="RECEIVER", help="the receiver's container ID (its owner granted you)")
    send.add_argument("paths", nargs="+", metavar="PATH", help="files or folders, relative to the send folder")
    send.add_argument("--prefix", default="", help="where under the bucket the files land")
    send.add_argument("--label", default="")
    send.add_argument("--overwrite", choices=[policy.value for policy in Overwrite])
    send.add_argument("--no-verify", action="store_true", help="skip the SHA-256 check of what landed")
    send.add_argument("--bwlimit", default="", metavar="RATE", help="bytes per second, e.g. 50M")
    s3 = send.add_argument_group("an S3 endpoint entered by hand (instead of --to); the secret key comes "
                                 "from DTN_S3_SECRET_KEY or a prompt")
    s3.add_argument("--s3-host")
    s3.add_argument("--s3-port", type=int)
    s3.add_argument("--s3-bucket")
    s3.add_argument("--s3-access-key")
    s3.add_argument("--s3-no-tls", action="store_true", help="plain HTTP to the S3 endpoint")
    send.add_argument("--watch", action="store_true", help="then watch it (exit status as for `dtn watch`)")
    _watch_options(send, "with --watch: give up watching after S seconds (exit 4)")

    watch_parser = command("watch", cmd_watch, "show a transfer's progress live until it finishes")
    watch_parser.add_argument("transfer_id", metavar="TRANSFER_ID")
    _watch_options(watch_parser, "give up after S seconds (exit 4); the transfer goes on")

    stop = command("stop", cmd_stop, "stop a transfer (a running one stops at its agent's next report)")
    stop.add_argument("transfer_id", metavar="TRANSFER_ID")

    restart = command("restart", cmd_restart, "restart a stopped or failed transfer; only what is missing is sent")
    restart.add_argument("transfer_id", metavar="TRANSFER_ID")
    restart.add_argument("--watch", action="store_true", help="then watch it")
    _watch_options(restart, "with --watch: give up watching after S seconds (exit 4)")

    show = command("show", _looking(lookup.cmd_show), "one transfer's record: state, files, bytes, times, error")
    show.add_argument("transfer_id", metavar="TRANSFER_ID")
    events = command("events", _looking(lookup.cmd_events), "one transfer's event log, oldest first")
    events.add_argument("transfer_id", metavar="TRANSFER_ID")

    manifest = command("manifest", cmd_manifest, "per-file results: path, size, both SHA-256s, outcome, error")
    manifest.add_argument("transfer_id", metavar="TRANSFER_ID")
    manifest.add_argument("--csv", action="store_true", help="CSV instead of JSON")
    manifest.add_argument("-o", "--output", metavar="FILE",
                          help="write it to FILE instead of standard output").complete = shtab.FILE

    completion = command("completion", cmd_completion, "print a shell completion script: "
                         "`source <(dtn completion bash)`, or for zsh save it as _dtn on your $fpath")
    completion.add_argument("shell", choices=["bash", "zsh"])
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "transfer_id", None) is not None:
            checked_transfer_id(args.transfer_id)
        return args.func(args)
    except Fail as exc:
        _report(args, str(exc), exc.code)
        return exc.code
    except config.ConfigError as exc:
        _report(args, str(exc), EXIT_USAGE)
        return EXIT_USAGE
    except APIError as exc:
        code = _exit_code_for(exc)
        message = exc.error if exc.status is not None else str(exc)
        if code == EXIT_AUTH:
            message += " (sign in again with `dtn login`)"
        elif exc.status == 404:
            message = _not_found(args) or message
        _report(args, message, code, status=exc.status, field=exc.field)
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK


def _not_found(args) -> str | None:
    """The portal's 404 says only "not found" (never whether it is someone else's): say what was looked for."""
    if getattr(args, "transfer_id", None):
        return f"no transfer {args.transfer_id} of yours: `dtn transfers` lists them"
    if args.command == "ls":
        return f"no sender {args.location.partition(':')[0]} of yours: `dtn containers` lists them"
    return None


def _report(args, message: str, code: int, **extra) -> None:
    print(f"dtn: error: {message}", file=sys.stderr)
    if getattr(args, "json", False):
        print_json({"error": message, "exit_status": code, **extra})


if __name__ == "__main__":
    sys.exit(main())
