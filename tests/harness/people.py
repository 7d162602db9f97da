"""A person using the portal's API with a personal token: signed up, then the send
flow, stop, restart and the transfer's record."""

from __future__ import annotations

from urllib.parse import urlsplit

import requests

from tests.harness.files import wait_for
from tests.harness.s3 import S3Server


class Person:
    """A person using the portal's API with a personal token."""

    def __init__(self, portal_url: str, username: str, verify: bool | str = True):
        """`verify`: as requests takes it; a path trusts that certificate (a self-signed portal's)."""
        self.url = portal_url
        self.username = username
        # Given with each request: requests lets REQUESTS_CA_BUNDLE override a session's `verify`.
        self.verify = verify
        self.session = requests.Session()
        body = {"username": username, "email": f"{username}@example.org", "password": "correct horse battery staple 42"}
        response = self.session.post(f"{portal_url}/api/v1/signup", json=body, timeout=30, verify=verify)
        assert response.status_code == 201, response.text
        response = self.session.post(f"{portal_url}/api/v1/auth/token", json={**body, "name": "e2e"}, timeout=30,
                                     verify=verify)
        assert response.status_code == 201, response.text
        self.session.headers["Authorization"] = f"Bearer {response.json()['token']}"

    def call(self, method: str, path: str, expect: int | tuple = 200, **kwargs):
        response = self.session.request(method, f"{self.url}{path}", timeout=30, verify=self.verify, **kwargs)
        expected = (expect,) if isinstance(expect, int) else expect
        assert response.status_code in expected, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def register(self, name: str, role: str = "sender") -> dict:
        return self.call("POST", "/api/v1/containers", 201, json={"name": name, "role": role})

    def send(self, sender_id: str, sources: list[str], s3: S3Server, bucket: str, **options) -> str:
        """The send flow with an S3 endpoint entered by hand (the keys travel once, to the portal)."""
        body = {"sender": sender_id, "sources": sources, "s3_host": "127.0.0.1", "s3_port": s3.port,
                "s3_tls": bool(s3.cert), "s3_bucket": bucket, "s3_access_key": options.pop("access_key", s3.access_key),
                "s3_secret_key": options.pop("secret_key", s3.secret_key), **options}
        return self.call("POST", "/api/v1/transfers", 201, json=body)["transfer_id"]

    def transfer(self, transfer_id: str) -> dict:
        return self.call("GET", f"/api/v1/transfers/{transfer_id}")

    def files(self, transfer_id: str) -> dict[str, dict]:
        manifest = self.call("GET", f"/api/v1/transfers/{transfer_id}/manifest.json")["manifest"]
        return {row["path"]: row for row in manifest}

    def events(self, transfer_id: str) -> list[dict]:
        """Every event of the transfer, page after page (a long transfer has more than one page)."""
        page = self.call("GET", f"/api/v1/transfers/{transfer_id}/events?limit=500")
        found = list(page["results"])
        while page.get("next"):
            following = urlsplit(page["next"])
            page = self.call("GET", f"{following.path}?{following.query}")
            found.extend(page["results"])
        return found

    def command(self, command_id: str) -> dict:
        return self.call("GET", f"/api/v1/commands/{command_id}")

    def latest_command(self, transfer_id: str) -> dict:
        return self.command(self.transfer(transfer_id)["commands"][-1]["command_id"])

    def stop(self, transfer_id: str) -> dict:
        return self.call("POST", f"/api/v1/transfers/{transfer_id}/stop")

    def restart(self, transfer_id: str) -> dict:
        return self.call("POST", f"/api/v1/transfers/{transfer_id}/restart", (200, 201))

    def wait_state(self, transfer_id: str, states, timeout: float = 60) -> dict:
        states = {states} if isinstance(states, str) else set(states)

        def reached():
            record = self.transfer(transfer_id)
            return record if record["state"] in states else None

        return wait_for(reached, timeout, f"transfer {transfer_id} to be {sorted(states)}", 0.2)
