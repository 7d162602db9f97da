"""Model choices built from the protocol's one list, so the portal and the agent
cannot drift apart."""

from django.db import models

from dtn_protocol.failures import FailureReason
from dtn_protocol.states import CommandState

CommandStates = models.TextChoices("CommandStates", [(s.name, s.value) for s in CommandState])
FailureReasons = models.TextChoices("FailureReasons", [(r.name, r.value) for r in FailureReason])


class TransferState(models.TextChoices):
    """A transfer's state, derived from its latest command (see TRANSFER_STATE_OF)."""

    QUEUED = "queued"
    ACTIVE = "active"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


TRANSFER_STATE_OF = {
    CommandState.QUEUED: TransferState.QUEUED,
    CommandState.CLAIMED: TransferState.ACTIVE,
    CommandState.RUNNING: TransferState.ACTIVE,
    CommandState.SUCCEEDED: TransferState.SUCCEEDED,
    CommandState.FAILED: TransferState.FAILED,
    CommandState.CANCELED: TransferState.CANCELED,
}
FINISHED_TRANSFER_STATES = frozenset({TransferState.SUCCEEDED, TransferState.FAILED, TransferState.CANCELED})
# Restart is for transfers that did not complete; a succeeded one is done.
RESTARTABLE_TRANSFER_STATES = frozenset({TransferState.FAILED, TransferState.CANCELED})


class Overwrite(models.TextChoices):
    # Nothing is ever deleted at the destination under either policy.
    UPDATE_CHANGED = "update_changed", "Replace files whose size or checksum differ"
    SKIP_EXISTING = "skip_existing", "Never touch a file already there"


class FileOutcome(models.TextChoices):
    SENT = "sent"
    SKIPPED = "skipped"
    FAILED = "failed"


class DestinationKind(models.TextChoices):
    CONTAINER = "container", "A receiver container (by grant)"
    S3 = "s3", "An S3 endpoint entered by hand"


class NetworkCheckMode(models.TextChoices):
    ENFORCE = "enforce", "check first; a no-go stops the transfer"
    OVERRIDE = "override", "check first; go ahead even on a no-go"
    SKIP = "skip", "only reachability, certificate and keys; no probe"
