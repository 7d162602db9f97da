"""What a receiver's (or rclone's) words mean, as a reason from the closed list
(dtn_protocol/failures.py). Shared by the sender, which reads rclone's error text, and
the network check, which reads S3 error codes; and the one shape of an error that
stands for such a reason."""

from __future__ import annotations

from dtn_protocol.failures import FailureReason

_CLASSES = [
    (FailureReason.CERTIFICATE_MISMATCH, ("x509:", "tls: ", "certificate")),
    (FailureReason.AUTH_FAILED, ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "StatusCode: 403",
                                 "Forbidden")),
    (FailureReason.RECEIVER_FULL, ("no space left", "StorageFull", "XMinioStorageFull", "InsufficientStorage",
                                   "QuotaExceeded", "StatusCode: 507", "disk full")),
    (FailureReason.CHECKSUM_MISMATCH, ("corrupted on transfer", "hashes differ", "hash differ", "BadDigest")),
    (FailureReason.RECEIVER_UNREACHABLE, ("connection refused", "no such host", "i/o timeout", "network is unreachable",
                                          "no route to host", "connection reset", "dial tcp", "timeout awaiting",
                                          "context deadline exceeded", "Client.Timeout", "EOF",
                                          "server misbehaving")),
]


class ReasonedError(Exception):
    """Something failed for a reason of the closed list; `message` says it for a person."""

    def __init__(self, reason: FailureReason, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def classify(text: str, default: FailureReason = FailureReason.RCLONE_ERROR) -> FailureReason:
    for reason, needles in _CLASSES:
        if any(needle in text for needle in needles):
            return reason
    return default
