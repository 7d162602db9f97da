"""A grant: the receiver's owner lets one person send to one receiver container.

Each grant carries its own S3 key pair and bucket, generated here. The secret
is stored only as Fernet ciphertext and read back for exactly two parties: the
receiver's agent (GET /api/agent/v1/grants) and a sender agent while it holds a
command to this receiver (the claim answer). Revoking keeps the row, for history
and so a revoked bucket name is never handed out again on that receiver."""

from __future__ import annotations

import logging
import re
import secrets
import string
import uuid

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import Q
from django.utils import timezone

from dtn_protocol.endpoints import Destination
from portal.containers.models import RECEIVER_ROLES
from portal.grants.signals import grant_revoked
from portal.lib import crypto
from portal.lib.errors import Refused

log = logging.getLogger(__name__)

ACCESS_KEY_PREFIX = "DTNG"
ACCESS_KEY_LENGTH = 20
_ACCESS_KEY_ALPHABET = string.ascii_uppercase + string.digits
BUCKET_SLUG_MAX = 40
# AWS reserves these prefixes; a username that starts with one gets a neutral prefix.
_RESERVED_BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")


def new_access_key() -> str:
    body = "".join(secrets.choice(_ACCESS_KEY_ALPHABET) for _ in range(ACCESS_KEY_LENGTH - len(ACCESS_KEY_PREFIX)))
    return ACCESS_KEY_PREFIX + body


def new_secret_key() -> str:
    return secrets.token_urlsafe(30)


def bucket_name_for(username: str) -> str:
    """An S3-valid bucket name that says whose it is, e.g. 'alice-3f2a9c0d'.
    The random tail keeps it unique per receiver, also across re-grants."""
    slug = re.sub(r"[^a-z0-9]+", "-", username.lower()).strip("-")[:BUCKET_SLUG_MAX].strip("-") or "grant"
    if slug.startswith(_RESERVED_BUCKET_PREFIXES):
        slug = f"g-{slug}"[:BUCKET_SLUG_MAX].strip("-")
    return f"{slug}-{secrets.token_hex(4)}"


class NotGranted(Refused):
    pass


class GrantQuerySet(models.QuerySet):
    def active(self):
        return self.filter(revoked_at__isnull=True)

    def usable_by(self, user):
        """Active grants to this person on receivers that still serve."""
        return (self.active().filter(grantee=user, receiver__role__in=RECEIVER_ROLES)
                .select_related("receiver", "receiver__owner"))

    def grant_for(self, owner, receiver_id) -> "Grant":
        """The grant `owner` sends through to that receiver, which must have reported where it serves."""
        grant = self.usable_by(owner).filter(receiver_id=receiver_id).first()
        if grant is None:
            # The same words whether the container does not exist, is not a
            # receiver, or its owner never granted you: no probing for IDs.
            raise NotGranted("receiver", "You have no grant to send to a receiver container with that ID; "
                                         "ask its owner to grant you.")
        if not grant.receiver.endpoint:
            raise NotGranted("receiver", f"The receiver '{grant.receiver.name}' has not reported its S3 endpoint "
                                         "yet: its agent must run and check in first.")
        return grant


class AlreadyGranted(Exception):
    pass


class Grant(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    receiver = models.ForeignKey("containers.Container", on_delete=models.CASCADE, related_name="grants")
    grantee = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="grants_received")
    access_key = models.CharField(max_length=ACCESS_KEY_LENGTH, unique=True)
    secret_key_encrypted = crypto.CiphertextField()
    bucket = models.CharField(max_length=63)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = GrantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["receiver", "bucket"], name="grant_bucket_unique_per_receiver"),
            # One live grant per person and receiver, so "send to this container" names one key pair.
            models.UniqueConstraint(fields=["receiver", "grantee"], condition=Q(revoked_at__isnull=True),
                                    name="grant_one_active_per_grantee"),
        ]

    def __str__(self):
        return f"grant {self.id} to {self.grantee_id} on {self.receiver_id}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def secret_key(self) -> str:
        """The plaintext secret, for an agent entitled to it and nobody else."""
        return crypto.decrypt(self.secret_key_encrypted)

    def destination(self, prefix: str = "") -> dict:
        """How a sender's agent reaches this grant's S3 server, keys included: for the agent
        holding a command or a check under this grant, never for a person. The endpoint is
        empty while the receiver has reported none."""
        receiver = self.receiver
        # Every grant is served at the receiver's one address; a heartbeat cannot set another.
        endpoint = receiver.endpoint
        return {
            "kind": Destination.RECEIVER.value, "endpoint": endpoint, "bucket": self.bucket, "prefix": prefix,
            "access_key": self.access_key, "secret_key": self.secret_key(),
            "tls": endpoint.lower().startswith("https://"),
            "certificate_pem": receiver.certificate_pem, "certificate_sha256": receiver.certificate_sha256,
            # What the receiver last said it has room for: the network check weighs it against the transfer.
            "free_bytes": receiver.disk_free_bytes,
            # How its filesystem compares names, as its agent found by trying: the sender refuses two paths
            # that would land as one file there (name_collision).
            "names": receiver_names(receiver.health),
        }

    @classmethod
    def issue(cls, receiver, grantee) -> "Grant":
        """A new grant with fresh keys. A second live grant for the same person
        and receiver is refused; a clash of random names is retried."""
        for _ in range(5):
            try:
                with transaction.atomic():
                    grant = cls.objects.create(
                        receiver=receiver, grantee=grantee, access_key=new_access_key(),
                        secret_key_encrypted=crypto.encrypt(new_secret_key()),
                        bucket=bucket_name_for(grantee.username),
                    )
            except IntegrityError:
                if cls.objects.active().filter(receiver=receiver, grantee=grantee).exists():
                    raise AlreadyGranted(f"{grantee.username} already has a grant to {receiver.name}") from None
                continue
            log.info("grant %s: %s may send to container %s", grant.pk, grantee.username, receiver.pk)
            return grant
        raise RuntimeError("could not find a free bucket name or access key after 5 tries")

    def revoke(self) -> bool:
        """Retire the grant; the sends still queued under it fail with it (portal/transfers/receivers.py).
        Returns False if it was already revoked (revoking twice changes nothing)."""
        now = timezone.now()
        with transaction.atomic():
            changed = Grant.objects.filter(pk=self.pk, revoked_at__isnull=True).update(revoked_at=now)
            if changed:
                answers = grant_revoked.send(sender=Grant, grant=self)
                failed = sum(count for _, count in answers if isinstance(count, int))
        self.refresh_from_db(fields=["revoked_at"])
        if changed:
            log.info("grant %s revoked; %s queued command(s) failed", self.pk, failed)
        return bool(changed)


def receiver_names(health) -> dict:
    """The `names` a receiver's heartbeat reported (agent/names.py, probe_folder), only as typed: what a
    heartbeat says is the agent's word, passed on to senders, never trusted for more."""
    said = health.get("names") if isinstance(health, dict) else None
    if not isinstance(said, dict):
        return {}
    kept = {key: said[key] for key in ("case_insensitive", "normalization_insensitive") if isinstance(said.get(key), bool)}
    if said.get("keys") == "rclone":  # its S3 server is rclone's, which lists a control character as its picture
        kept["keys"] = "rclone"
    name_max = said.get("name_max")
    if isinstance(name_max, int) and not isinstance(name_max, bool) and 0 < name_max < 100_000:
        kept["name_max"] = name_max
    return kept
