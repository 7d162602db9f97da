"""The people's REST API, as a person's script (or the box) calls it."""

from __future__ import annotations

import requests

from portal.box.processes import BoxError


class PortalAPI:
    def __init__(self, url: str, token: str):
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    @classmethod
    def sign_up(cls, url: str, username: str, password: str, email: str = "") -> "PortalAPI":
        """A new account, then a personal token for it (what `dtn login` does)."""
        body = {"username": username, "password": password, "email": email}
        response = requests.post(f"{url}/api/v1/signup", json=body, timeout=30)
        if response.status_code != 201:
            raise BoxError(f"signing up {username} failed: {_error(response)}")
        return cls.log_in(url, username, password)

    @classmethod
    def log_in(cls, url: str, username: str, password: str) -> "PortalAPI":
        response = requests.post(f"{url}/api/v1/auth/token",
                                 json={"username": username, "password": password, "name": "dtn box"}, timeout=30)
        if response.status_code != 201:
            raise BoxError(f"signing in {username} failed: {_error(response)}")
        return cls(url, response.json()["token"])

    def call(self, method: str, path: str, expect=(200,), **kwargs):
        response = self.session.request(method, f"{self.url}{path}", timeout=30, **kwargs)
        if response.status_code not in expect:
            raise BoxError(f"{method} {path} answered {response.status_code}: {_error(response)}")
        return response.json() if response.content else None

    def register(self, name: str, role: str) -> dict:
        return self.call("POST", "/register", (201,), json={"name": name, "role": role})

    def grant(self, grantee: str, receiver_id: str) -> dict:
        return self.call("POST", "/api/v1/grants", (201,), json={"grantee": grantee, "receiver": receiver_id})

    def grants_given(self) -> list[dict]:
        return self.call("GET", "/api/v1/grants")["given"]

    def container(self, container_id: str) -> dict:
        return self.call("GET", f"/api/v1/containers/{container_id}")

    def send(self, **body) -> dict:
        return self.call("POST", "/api/v1/transfers", (201,), json=body)

    def status(self, transfer_id: str) -> dict:
        return self.call("GET", f"/api/v1/transfers/{transfer_id}/status")

    def transfer(self, transfer_id: str) -> dict:
        return self.call("GET", f"/api/v1/transfers/{transfer_id}")

    def manifest(self, transfer_id: str) -> list[dict]:
        return self.call("GET", f"/api/v1/transfers/{transfer_id}/manifest.json")["manifest"]

    def events(self, transfer_id: str) -> list[dict]:
        return self.call("GET", f"/api/v1/transfers/{transfer_id}/events")


def _error(response) -> str:
    try:
        return response.json().get("error", response.text[:300])
    except ValueError:
        return response.text[:300]
