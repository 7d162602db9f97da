from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone

from dtn_protocol.api import PERSONAL_TOKEN_PREFIX
from portal.lib import tokens

# Writing last_used on every request would turn each API read into a write.
LAST_USED_RESOLUTION_SECONDS = 60


class User(AbstractUser):
    """Custom from the first migration, so fields can be added without a
    painful swap later."""


class PersonalToken(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="personal_tokens")
    name = models.CharField(max_length=100)
    lookup = models.CharField(max_length=tokens.LOOKUP_LENGTH, unique=True)
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.display_prefix})"

    @property
    def display_prefix(self) -> str:
        return f"{PERSONAL_TOKEN_PREFIX}{self.lookup}…"

    @classmethod
    def issue(cls, user: User, name: str) -> tuple["PersonalToken", str]:
        minted = tokens.mint(PERSONAL_TOKEN_PREFIX)
        token = cls.objects.create(user=user, name=name, lookup=minted.lookup, digest=minted.digest)
        return token, minted.token

    @classmethod
    def authenticate(cls, raw: str) -> "PersonalToken | None":
        lookup, secret = tokens.split(raw, PERSONAL_TOKEN_PREFIX)
        row = cls.objects.select_related("user").filter(lookup=lookup).first() if lookup else None
        if not tokens.verify(secret, row.digest if row else None) or not row.user.is_active:
            return None
        row.touch()
        return row

    def touch(self):
        now = timezone.now()
        if self.last_used_at and (now - self.last_used_at).total_seconds() < LAST_USED_RESOLUTION_SECONDS:
            return
        PersonalToken.objects.filter(pk=self.pk).update(last_used_at=now)
        self.last_used_at = now


class SignInAddress(models.Model):
    """An address a person signed in from with their password: the per-username lock (accounts/guard.py) does not
    apply there, so guessing from elsewhere cannot lock them out of the places they use."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="sign_in_addresses")
    address = models.GenericIPAddressField()
    last_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "address"], name="one_row_per_sign_in_address")]
