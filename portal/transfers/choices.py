"""The transfers' model choices, built from the protocol's lists (portal/lib/choices.py)."""

from django.db import models

from dtn_protocol import options, states
from dtn_protocol.failures import FailureReason
from portal.lib.choices import text_choices

CommandStates = text_choices("CommandStates", states.CommandState)
FailureReasons = text_choices("FailureReasons", FailureReason)
TransferState = text_choices("TransferState", states.TransferState)
FileOutcome = text_choices("FileOutcome", states.FileOutcome)
Overwrite = text_choices("Overwrite", options.Overwrite, {
    options.Overwrite.UPDATE_CHANGED: "Replace files whose size or checksum differ",
    options.Overwrite.SKIP_EXISTING: "Never touch a file already there",
})
NetworkCheckMode = text_choices("NetworkCheckMode", options.CheckMode, {
    options.CheckMode.ENFORCE: "check first; a no-go stops the transfer",
    options.CheckMode.OVERRIDE: "check first; go ahead even on a no-go",
    options.CheckMode.SKIP: "only reachability, certificate and keys; no probe",
})


class DestinationKind(models.TextChoices):
    CONTAINER = "container", "A receiver container (by grant)"
    S3 = "s3", "An S3 endpoint entered by hand"
