"""Where `dtn` keeps its sign-in: one 0600 JSON file {portal, token, username}.

`$DTN_CONFIG_DIR/credentials.json`, else `$XDG_CONFIG_HOME/dtn/credentials.json`, else
`~/.config/dtn/credentials.json`. `DTN_TOKEN` and `DTN_PORTAL` in the environment win over the file."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path


class ConfigError(Exception):
    """Nothing to sign in with, or a file that cannot be read: exit status 2."""


@dataclass
class Credentials:
    portal: str
    token: str
    username: str = ""
    source: str = ""


def config_dir() -> Path:
    if os.environ.get("DTN_CONFIG_DIR"):
        return Path(os.environ["DTN_CONFIG_DIR"])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "dtn"


def credentials_path() -> Path:
    return config_dir() / "credentials.json"


def save(portal: str, token: str, username: str) -> Path:
    """Written whole or not at all, readable by its owner only from the first byte."""
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temp = tempfile.mkstemp(prefix=".credentials-", dir=path.parent)  # mkstemp makes it 0600
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump({"portal": portal, "token": token, "username": username}, handle)
            handle.write("\n")
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path


def _read_file() -> dict:
    path = credentials_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object; run `dtn login` again")
    if path.stat().st_mode & 0o077:
        print(f"dtn: warning: {path} holds your token and others can read it; chmod 600 it", file=sys.stderr)
    return data


def load() -> Credentials:
    stored = _read_file()
    token = os.environ.get("DTN_TOKEN") or stored.get("token")
    portal = os.environ.get("DTN_PORTAL") or stored.get("portal")
    if not token or not portal:
        missing = "a token" if not token else "a portal URL"
        raise ConfigError(f"no sign-in: {missing} is missing. Run `dtn login --portal URL --username NAME`, "
                          "or set DTN_PORTAL and DTN_TOKEN")
    source = "environment" if os.environ.get("DTN_TOKEN") else str(credentials_path())
    return Credentials(portal.rstrip("/"), token, stored.get("username", ""), source)
