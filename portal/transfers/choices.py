"""Model choices built from the protocol's lists (dtn_protocol), so the portal and
the agent cannot drift apart. Only the labels a person reads are the portal's."""

from django.db import models

from dtn_protocol import options, states
from dtn_protocol.failures import FailureReason
from dtn_protocol.states import (  # noqa: F401  (the portal reads them from here)
    FINISHED_TRANSFER_STATES,
    RESTARTABLE_TRANSFER_STATES,
    TRANSFER_STATE_OF,
)


def _choices(name: str, words, labels: dict | None = None) -> type[models.TextChoices]:
    # Without a label of its own, a choice reads as Django would label it ("Lease Expired").
    return models.TextChoices(name, [(word.name, (word.value, labels[word]) if labels else word.value)
                                     for word in words])


CommandStates = _choices("CommandStates", states.CommandState)
FailureReasons = _choices("FailureReasons", FailureReason)
TransferState = _choices("TransferState", states.TransferState)
FileOutcome = _choices("FileOutcome", states.FileOutcome)
Overwrite = _choices("Overwrite", options.Overwrite, {
    options.Overwrite.UPDATE_CHANGED: "Replace files whose size or checksum differ",
    options.Overwrite.SKIP_EXISTING: "Never touch a file already there",
})
NetworkCheckMode = _choices("NetworkCheckMode", options.CheckMode, {
    options.CheckMode.ENFORCE: "check first; a no-go stops the transfer",
    options.CheckMode.OVERRIDE: "check first; go ahead even on a no-go",
    options.CheckMode.SKIP: "only reachability, certificate and keys; no probe",
})


class DestinationKind(models.TextChoices):
    CONTAINER = "container", "A receiver container (by grant)"
    S3 = "s3", "An S3 endpoint entered by hand"
