"""The people's REST API, as a person's script, the `dtn` CLI or the box calls it.

No Django here: only `requests`. Every failure is an `APIError`: `status` is the HTTP status,
or None when the portal could not be reached at all; `error` and `field` are the portal's own
{"error": ..., "field": ...} body (portal/lib/errors.py)."""

from __future__ import annotations

import requests

TIMEOUT = 30
# Items asked for per page when walking a list (the portal's most).
PAGE = 500
CHUNK = 1 << 20  # a manifest is read and written a MiB at a time


class APIError(Exception):
    def __init__(self, message: str, status: int | None = None, error: str = "", field: str | None = None):
        super().__init__(message)
        self.status, self.error, self.field = status, error or message, field

    @property
    def unreachable(self) -> bool:
        return self.status is None


def _error(response) -> tuple[str, str | None]:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300].strip() or response.reason or "no answer", None
    if isinstance(body, dict):
        return str(body.get("error") or body.get("detail") or response.text[:300]), body.get("field")
    return response.text[:300], None


def _request(session, method: str, url: str, timeout: float, **kwargs):
    try:
        return session.request(method, url, timeout=timeout, **kwargs)
    except requests.RequestException as exc:
        raise APIError(f"cannot reach the portal at {url}: {exc.__class__.__name__}", None) from exc


class PortalAPI:
    def __init__(self, url: str, token: str, timeout: float = TIMEOUT):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.headers["User-Agent"] = "dtn-cli"

    # --- signing in ---------------------------------------------------------------------------

    @classmethod
    def _fail(cls, what: str, response) -> None:
        error, field = _error(response)
        raise APIError(f"{what} answered {response.status_code}: {error}", response.status_code, error, field)

    @classmethod
    def sign_up(cls, url: str, username: str, password: str, email: str = "") -> "PortalAPI":
        """A new account, then a personal token for it."""
        url = url.rstrip("/")
        body = {"username": username, "password": password, "email": email}
        response = _request(requests, "POST", f"{url}/api/v1/signup", TIMEOUT, json=body)
        if response.status_code != 201:
            cls._fail(f"signing up {username}", response)
        return cls.log_in(url, username, password)

    @classmethod
    def new_token(cls, url: str, username: str, password: str, name: str = "dtn box") -> str:
        """Exchange a username and password for a new personal token (what `dtn login` does)."""
        response = _request(requests, "POST", f"{url.rstrip('/')}/api/v1/auth/token", TIMEOUT,
                            json={"username": username, "password": password, "name": name})
        if response.status_code != 201:
            cls._fail(f"signing in {username}", response)
        return response.json()["token"]

    @classmethod
    def log_in(cls, url: str, username: str, password: str, name: str = "dtn box") -> "PortalAPI":
        return cls(url, cls.new_token(url, username, password, name))

    # --- calls --------------------------------------------------------------------------------

    def raw(self, method: str, path: str, expect=(200,), **kwargs) -> requests.Response:
        response = _request(self.session, method, f"{self.url}{path}", self.timeout, **kwargs)
        if response.status_code not in expect:
            self._fail(f"{method} {path}", response)
        return response

    def call(self, method: str, path: str, expect=(200,), **kwargs):
        response = self.raw(method, path, expect, **kwargs)
        return response.json() if response.content else None

    def listing(self, path: str, params: dict | None = None, most: int | None = None) -> list[dict]:
        """Every item of a list (the API's one pagination: ?limit=&offset=, {count, results}), up to `most`."""
        items: list[dict] = []
        while most is None or len(items) < most:
            limit = PAGE if most is None else min(PAGE, most - len(items))
            page = self.call("GET", path, params={**(params or {}), "limit": limit, "offset": len(items)})
            items.extend(page["results"])
            if not page["results"] or len(items) >= page["count"]:
                break
        return items

    def me(self) -> dict:
        return self.call("GET", "/api/v1/me")

    def register(self, name: str, role: str) -> dict:
        return self.call("POST", "/register", (201,), json={"name": name, "role": role})

    def grant(self, grantee: str, receiver_id: str) -> dict:
        return self.call("POST", "/api/v1/grants", (201,), json={"grantee": grantee, "receiver": receiver_id})

    def grants_given(self) -> list[dict]:
        return self.call("GET", "/api/v1/grants")["given"]

    def grants_received(self) -> list[dict]:
        return self.call("GET", "/api/v1/grants")["received"]

    def ask(self, container_id: str, kind: str, params: dict) -> dict:
        """Put a side-channel task to a container; its answer comes later at task(task_id)."""
        return self.call("POST", f"/api/v1/containers/{container_id}/tasks", (201,),
                         json={"kind": kind, "params": params})

    def task(self, task_id: str) -> dict:
        return self.call("GET", f"/api/v1/tasks/{task_id}")

    def containers(self) -> list[dict]:
        return self.listing("/api/v1/containers")

    def container(self, container_id: str) -> dict:
        return self.call("GET", f"/api/v1/containers/{container_id}")

    def send(self, **body) -> dict:
        return self.call("POST", "/api/v1/transfers", (201,), json=body)

    def transfers(self, state: str | None = None, limit: int = 50) -> list[dict]:
        return self.listing("/api/v1/transfers", {"state": state} if state else None, most=limit)

    def status(self, transfer_id: str) -> dict:
        return self.call("GET", f"/api/v1/transfers/{transfer_id}/status")

    def transfer(self, transfer_id: str) -> dict:
        return self.call("GET", f"/api/v1/transfers/{transfer_id}")

    def stop(self, transfer_id: str) -> dict:
        return self.call("POST", f"/api/v1/transfers/{transfer_id}/stop")

    def restart(self, transfer_id: str) -> dict:
        return self.call("POST", f"/api/v1/transfers/{transfer_id}/restart", (200, 201))

    def manifest_document(self, transfer_id: str) -> dict:
        return self.call("GET", f"/api/v1/transfers/{transfer_id}/manifest.json")

    def manifest(self, transfer_id: str) -> list[dict]:
        return self.manifest_document(transfer_id)["manifest"]

    def manifest_chunks(self, transfer_id: str, form: str):
        """The manifest (`csv` or `json`) as the portal streams it, piece by piece: a million files' manifest
        (~160 MiB) never sits in the CLI's memory."""
        response = self.raw("GET", f"/api/v1/transfers/{transfer_id}/manifest.{form}", stream=True)
        with response:
            try:
                yield from response.iter_content(CHUNK)
            except requests.RequestException as exc:
                raise APIError(f"the manifest was cut off: {exc.__class__.__name__}", None) from exc

    def events(self, transfer_id: str) -> list[dict]:
        return self.listing(f"/api/v1/transfers/{transfer_id}/events")
