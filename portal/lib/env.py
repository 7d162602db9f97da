"""Strict readers for settings that come from the environment.

A typo in a flag must stop the process at start, not silently turn a
production switch off, so every reader refuses what it cannot parse.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


class ConfigError(Exception):
    """A setting from the environment is missing or malformed."""


def env_str(name: str, default: str | None = None, environ=os.environ) -> str | None:
    value = environ.get(name)
    if value is None or value == "":
        return default
    return value


def env_bool(name: str, default: bool, environ=os.environ) -> bool:
    value = environ.get(name)
    if value is None or value == "":
        return default
    if value == "true":
        return True
    if value == "false":
        return False
    raise ConfigError(f"{name} must be 'true' or 'false', not {value!r}")


def env_int(name: str, default: int, environ=os.environ, minimum: int | None = None) -> int:
    value = environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {value!r}") from None
    if minimum is not None and number < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {number}")
    return number


def env_list(name: str, default: list[str], environ=os.environ) -> list[str]:
    value = environ.get(name)
    if value is None or value == "":
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_secret(
    name: str,
    state_dir: Path,
    generate=lambda: secrets.token_urlsafe(48),
    environ=os.environ,
) -> str:
    """A secret from NAME, from the file named by NAME_FILE (docker secrets),
    or generated once into a 0600 file under the state directory.

    No secret has a default in code: a fresh checkout gets its own.
    """
    value = environ.get(name)
    if value:
        return value
    file_name = environ.get(f"{name}_FILE")
    if file_name:
        try:
            value = Path(file_name).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE={file_name} cannot be read: {exc.strerror}") from None
        if not value:
            raise ConfigError(f"{name}_FILE={file_name} is empty")
        return value
    return _generated_secret(state_dir / "secrets" / name.lower(), generate)


def _generated_secret(path: Path, generate) -> str:
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
