"""The one strict reader of settings from the environment, for the portal and the agent.

A typo in a setting must stop the process at start with a sentence naming the
variable, not silently turn a production switch off or become a default at
3 a.m., so every reader refuses what it cannot parse. An empty value counts as
unset (docker compose passes `NAME: ${NAME:-}` for everything it may set).

A secret is read from NAME, from the file named by NAME_FILE (docker secrets),
or from the agent's secrets file, in that order; NAME and NAME_FILE together are
refused, as two sources for one secret is a mistake waiting to happen. The
portal's own keys are generated once into its state directory when none is given.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it."""


def new_secret() -> str:
    return secrets.token_urlsafe(48)


class Env:
    """The readers over one environment (os.environ unless given) and, for the agent, the values of
    its secrets file (agent/config.py reads and checks that file)."""

    def __init__(self, environ: Mapping[str, str] | None = None, secrets_file: Mapping[str, str] | None = None):
        self.environ = os.environ if environ is None else environ
        self.secrets_file = secrets_file or {}

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.environ.get(name)
        return default if value is None or value == "" else value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.text(name)
        if raw is None:
            return default
        if raw not in ("true", "false"):
            raise ConfigError(f"{name} must be 'true' or 'false', not {raw!r}")
        return raw == "true"

    def integer(self, name: str, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
        return self._bounded(name, default, int, "a whole number", minimum, maximum, "")

    def number(self, name: str, default: float, minimum: float | None = None,
               maximum: float | None = None) -> float:
        return self._bounded(name, default, float, "a number", minimum, maximum, "g")

    def items(self, name: str, default: list[str]) -> list[str]:
        """A comma-separated list, each item trimmed, empty items dropped."""
        raw = self.text(name)
        if raw is None:
            return list(default)
        return [item.strip() for item in raw.split(",") if item.strip()]

    def secret(self, name: str, *, required: bool = False, state_dir: Path | None = None,
               generate: Callable[[], str] = new_secret) -> str | None:
        """The secret as the module's docstring says. With `state_dir`, one missing everywhere is
        generated once into a 0600 file under it and kept across starts."""
        direct, file_name = self.text(name), self.text(f"{name}_FILE")
        if direct and file_name:
            raise ConfigError(f"set {name} or {name}_FILE, not both")
        if file_name:
            try:
                value = Path(file_name).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"{name}_FILE={file_name} cannot be read: {exc.strerror}") from None
            if not value:
                raise ConfigError(f"{name}_FILE={file_name} is empty")
            return value
        if direct:
            return direct
        if self.secrets_file.get(name):
            return self.secrets_file[name]
        if state_dir is not None:
            return _generated(Path(state_dir) / "secrets" / name.lower(), generate)
        if required:
            raise ConfigError(f"{name} is required (in the environment, in {name}_FILE, or in the secrets file)")
        return None

    def given(self, name: str) -> bool:
        """Whether a setting is there in any form a secret may take."""
        return bool(self.text(name) or self.text(f"{name}_FILE") or self.secrets_file.get(name))

    def _bounded(self, name, default, parse, what: str, minimum, maximum, spec: str):
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = parse(raw)
        except ValueError:
            raise ConfigError(f"{name} must be {what}, not {raw!r}") from None
        return _within(name, value, minimum, maximum, spec)


# The short spellings the portal's settings read with: each over os.environ unless told.

def env_str(name: str, default: str | None = None, environ=None) -> str | None:
    return Env(environ).text(name, default)


def env_bool(name: str, default: bool, environ=None) -> bool:
    return Env(environ).boolean(name, default)


def env_int(name: str, default: int, environ=None, minimum: int | None = None, maximum: int | None = None) -> int:
    return Env(environ).integer(name, default, minimum, maximum)


def env_list(name: str, default: list[str], environ=None) -> list[str]:
    return Env(environ).items(name, default)


def env_secret(name: str, state_dir: Path | None = None, generate: Callable[[], str] = new_secret,
               environ=None) -> str | None:
    """No secret has a default in code: with `state_dir`, one missing is generated into it, so a fresh
    checkout gets its own; without, a missing one is None."""
    return Env(environ).secret(name, state_dir=state_dir, generate=generate)


def _within(name: str, value, minimum, maximum, spec: str):
    if minimum is not None and maximum is not None and not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be between {minimum:{spec}} and {maximum:{spec}}, not {value:{spec}}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be at least {minimum:{spec}}, not {value:{spec}}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be at most {maximum:{spec}}, not {value:{spec}}")
    return value


def _generated(path: Path, generate: Callable[[], str]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        return _nonempty(path)
    except FileNotFoundError:
        pass
    # Written aside, then linked into place: link() fails if another process
    # won the race, and nobody ever reads a half-written secret.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(generate() + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink()
    return _nonempty(path)


def _nonempty(path: Path) -> str:
    # An empty file (a crash, a careless edit) must never become an empty key.
    value = path.read_text().strip()
    if not value:
        raise ConfigError(f"{path} is empty; delete it to have a new secret generated")
    return value
