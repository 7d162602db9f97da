"""Secrets the portal must be able to read back (S3 secret keys), encrypted at rest.

Keys come from DTN_ENCRYPTION_KEYS, comma-separated, newest first: the newest
encrypts, every listed key decrypts. Rotation is: put a new key in front,
run `manage.py rotate_encryption` (re-encrypts every CiphertextField under the
newest key), then drop the old key from the list.

Ciphertext lives in CiphertextField columns and is decrypted only by an explicit
call to decrypt(): a field that decrypted itself would hand plaintext to every
`.values()`, admin page and serializer that touched the model.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.db import models

from dtn_protocol.env import ConfigError


class DecryptionError(Exception):
    """No configured key opens this ciphertext: a key was dropped before rotating."""


def generate_key() -> str:
    return Fernet.generate_key().decode()


def parse_keys(raw: str, name: str = "DTN_ENCRYPTION_KEYS") -> list[str]:
    """The keys of a comma-separated list, each checked now so a typo stops the
    process at start instead of failing the first send."""
    keys = [part.strip() for part in raw.split(",") if part.strip()]
    if not keys:
        raise ConfigError(f"{name} holds no key")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            # The key itself is never echoed: this message may reach a log.
            raise ConfigError(f"{name}: key {position} is not a Fernet key (32 url-safe base64 bytes)") from None
    return keys


@lru_cache(maxsize=4)
def _multifernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def _current() -> MultiFernet:
    from django.conf import settings

    return _multifernet(tuple(settings.DTN_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return _current().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return _current().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise DecryptionError("no key in DTN_ENCRYPTION_KEYS opens this secret") from None


def rotate(ciphertext: str) -> str:
    """The same secret encrypted under the newest key."""
    try:
        return _current().rotate(ciphertext.encode()).decode()
    except InvalidToken:
        raise DecryptionError("no key in DTN_ENCRYPTION_KEYS opens this secret") from None


class CiphertextField(models.TextField):
    """A column holding Fernet ciphertext (or '' for none). Marked by its type so
    `rotate_encryption` finds every such column without a hand-kept list."""


def ciphertext_fields():
    """(model, field name) for every CiphertextField of every installed model."""
    from django.apps import apps

    return [(model, field.name) for model in apps.get_models() for field in model._meta.concrete_fields
            if isinstance(field, CiphertextField)]
