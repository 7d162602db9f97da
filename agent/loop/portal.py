"""The agent's side of the portal protocol (docs/protocol.md), over `requests`.

The session is injected, so unit tests hand in a fake transport and never
open a socket. Errors form a small tree:

    PortalError
    ├── TokenRejected      401/403: retrying cannot help; the agent exits 3
    ├── PortalUnavailable  5xx, 429, network trouble: retry after a backoff
    ├── CommandGone        409/404 on a report: the command is not ours any more
    └── (itself)           any other refusal: a bug on one side; logged, not retried
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

import requests

from agent import logs
from dtn_protocol.api import API_PREFIX
from dtn_protocol.states import CommandState

REQUEST_TIMEOUT = 30.0
# Longer than any hold the server grants, so a held claim is never cut short by us.
CLAIM_GRACE = 15.0
# A report larger than this goes in pieces (split_report); so does one the portal answers 413, as a portal whose
# DTN_MAX_REQUEST_BYTES is set below its 16 MiB default does. A piece is never dropped: its files matter.
MAX_REPORT_BYTES = 8 * 1024 * 1024
# Sent once, with the first piece: the portal would count a sample or a check twice.
ONCE_PER_REPORT = ("samples", "network_check")


class PortalError(Exception):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class TokenRejected(PortalError):
    pass


class PortalUnavailable(PortalError):
    pass


class CommandGone(PortalError):
    pass


@dataclass(frozen=True)
class Claimed:
    """What a claim brought: a command, side-channel tasks, or nothing."""

    command: dict | None = None
    tasks: list = field(default_factory=list)


@dataclass(frozen=True)
class ReportReply:
    state: str
    cancel_requested: bool
    # Only in answers to reports of the `verifying` phase: the receiver's verdict on what landed.
    verification: dict | None = None


class PortalClient:
    def __init__(self, base_url: str, token: str, instance_id: str, *, session=None, verify=True,
                 user_agent: str = "dtn-agent"):
        self.base = base_url.rstrip("/") + API_PREFIX
        self.instance_id = instance_id
        self.session = session if session is not None else requests.Session()
        self._headers = {"Authorization": f"Bearer {token}", "User-Agent": user_agent}
        self._verify = verify

    def _call(self, method: str, path: str, body: dict | None, *, timeout: float = REQUEST_TIMEOUT, params=None,
              headers: dict | None = None):
        url = self.base + path
        try:
            response = self.session.request(method, url, json=body, params=params,
                                            headers={**self._headers, **(headers or {})},
                                            timeout=timeout, verify=self._verify)
        except requests.RequestException as exc:
            # The exception text can hold the URL, never the token (it is a header).
            raise PortalUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        status = response.status_code
        if status in (401, 403):
            raise TokenRejected(f"the portal refused the agent token ({status} on {path})", status)
        if status >= 500 or status == 429:
            raise PortalUnavailable(f"{method} {path}: the portal answered {status}", status)
        return response

    @staticmethod
    def _error_text(response) -> str:
        try:
            body = response.json()
        except ValueError:
            return response.text[:300]
        return body.get("error", str(body))[:300] if isinstance(body, dict) else str(body)[:300]

    def _json(self, response, path: str) -> dict:
        try:
            body = response.json()
        except ValueError:
            raise PortalUnavailable(f"{path}: the portal's answer is not JSON", response.status_code) from None
        if not isinstance(body, dict):
            raise PortalError(f"{path}: expected an object, got {type(body).__name__}", response.status_code)
        return body

    def heartbeat(self, body: dict) -> dict:
        response = self._call("POST", "heartbeat", {"instance_id": self.instance_id, **body})
        if response.status_code != 200:
            raise PortalError(f"heartbeat refused ({response.status_code}): {self._error_text(response)}",
                              response.status_code)
        return self._json(response, "heartbeat")

    def grants(self, etag: str | None = None) -> tuple[list[dict] | None, str | None]:
        """A receiver's active grants with their keys, or None if unchanged since `etag`."""
        response = self._call("GET", "grants", None, headers={"If-None-Match": etag} if etag else None)
        if response.status_code == 304:
            return None, etag
        if response.status_code != 200:
            raise PortalError(f"grants refused ({response.status_code}): {self._error_text(response)}",
                              response.status_code)
        body = self._json(response, "grants")
        grants = body.get("grants")
        if not isinstance(grants, list):
            raise PortalError("grants: the answer has no list of grants", response.status_code)
        return grants, response.headers.get("ETag")

    def claim(self, wait: float, *, tasks: bool = False) -> Claimed:
        """The next command; or, asked with `tasks`, the side-channel tasks that came first; or
        neither when the server held the request and had nothing."""
        body = {"instance_id": self.instance_id}
        if tasks:
            body["tasks"] = True
        response = self._call("POST", "commands/next", body,
                              params={"wait": f"{max(wait, 0):g}"}, timeout=max(wait, 0) + CLAIM_GRACE)
        if response.status_code == 204:
            return Claimed()
        if response.status_code == 200 and tasks:
            found = self._json(response, "commands/next").get("tasks")
            return Claimed(tasks=found if isinstance(found, list) else [])
        if response.status_code != 201:
            raise PortalError(f"claim refused ({response.status_code}): {self._error_text(response)}",
                              response.status_code)
        return Claimed(command=self._json(response, "commands/next"))

    def report(self, command_id: str, state: str, *, progress: dict | None = None, reason: str = "",
               message: str = "") -> ReportReply:
        """Report `state`. A report too large for one request goes as `running` pieces, each with part of the
        files (or events) and the same counters, then the last piece with `state`: the portal keeps every
        file's last word by path, so pieces add up to the whole report."""
        body = self._report_body(state, progress, reason, message)
        pieces = split_report(progress) if len(json.dumps(body).encode()) > MAX_REPORT_BYTES else None
        if pieces is None:
            response = self._call("PATCH", f"commands/{command_id}", body)
            if response.status_code != 413:
                return self._report_reply(command_id, state, response)
            pieces = split_report(progress)
            if pieces is None:
                raise PortalError(f"report refused (413) and too small to split: {self._error_text(response)}", 413)
        first, rest = pieces
        self.report(command_id, CommandState.RUNNING, progress=first)
        return self.report(command_id, state, progress=rest, reason=reason, message=message)

    def _report_body(self, state: str, progress: dict | None, reason: str, message: str) -> dict:
        body = {"instance_id": self.instance_id, "state": state}
        if progress is not None:
            body["progress"] = progress
        if reason:
            body["reason"] = reason
        if message:
            # A failure's text can quote rclone or an exception: no secret of ours leaves in it.
            body["message"] = logs.mask(message)[:4000]
        return body

    def _report_reply(self, command_id: str, state: str, response) -> ReportReply:
        if response.status_code in (404, 409):
            raise CommandGone(f"command {command_id}: {self._error_text(response)}", response.status_code)
        if response.status_code != 200:
            raise PortalError(f"report refused ({response.status_code}): {self._error_text(response)}",
                              response.status_code)
        reply = self._json(response, "report")
        verification = reply.get("verification")
        return ReportReply(state=reply.get("state", state), cancel_requested=bool(reply.get("cancel_requested")),
                           verification=verification if isinstance(verification, dict) else None)

    def wait_tasks(self, wait: float) -> list[dict]:
        """Side-channel tasks, long-polled: returned as soon as one is asked, [] after `wait` seconds."""
        response = self._call("POST", "tasks/next", {"instance_id": self.instance_id},
                              params={"wait": f"{max(wait, 0):g}"}, timeout=max(wait, 0) + CLAIM_GRACE)
        if response.status_code == 204:
            return []
        if response.status_code != 200:
            raise PortalError(f"tasks/next refused ({response.status_code}): {self._error_text(response)}",
                              response.status_code)
        tasks = self._json(response, "tasks/next").get("tasks")
        return tasks if isinstance(tasks, list) else []

    def answer_task(self, task_id: str, *, ok: bool, result: dict | None = None, error: str = "") -> None:
        """Answer a side-channel task (docs/protocol.md, "Side channel")."""
        body = {"instance_id": self.instance_id, "ok": ok, "result": result or {}, "error": error[:4000]}
        response = self._call("POST", f"tasks/{task_id}", body)
        if response.status_code in (404, 409, 410):
            raise CommandGone(f"task {task_id}: {self._error_text(response)}", response.status_code)
        if response.status_code not in (200, 201, 204):
            raise PortalError(f"task answer refused ({response.status_code}): {self._error_text(response)}",
                              response.status_code)


def split_report(progress: dict | None) -> tuple[dict, dict] | None:
    """Two reports that together say what `progress` says: its files (or, with one file at most, its events)
    in halves, the counters in both; None when nothing can be halved."""
    if not isinstance(progress, dict):
        return None
    for key in ("files", "events"):
        items = progress.get(key)
        if isinstance(items, list) and len(items) > 1:
            half = len(items) // 2
            first = {**progress, key: items[:half]}
            rest = {name: value for name, value in progress.items() if name not in ONCE_PER_REPORT}
            rest.update({key: items[half:], "files" if key == "events" else "events": []})
            return first, rest
    return None


class Backoff:
    """Exponential backoff with jitter: 1, 2, 4 … up to `cap` seconds, each
    delay drawn from its upper half so a fleet of agents does not return in step."""

    def __init__(self, base: float = 1.0, cap: float = 60.0, rng: random.Random | None = None):
        self.base, self.cap = base, cap
        self.rng = rng or random.Random()
        self.failures = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * (2 ** self.failures))
        self.failures += 1
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0
