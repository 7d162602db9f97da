"""The S3 side of the check, through the minio SDK (not rclone), so each PUT can be
timed and the path told apart from rclone's own behaviour. Errors become failure
reasons from the closed list."""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Protocol

from agent.failures import ReasonedError, classify
from dtn_protocol.failures import FailureReason
from dtn_protocol.units import MiB


class S3Error(ReasonedError):
    """An S3 step failed."""


class S3(Protocol):
    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def remove(self, key: str) -> None: ...


class Payload:
    """`size` bytes of one random block repeated: a PUT of any size streams from it, so the probe's memory
    does not grow with its PUTs or its streams (the agent's peak RSS had reached 76-107 MB with PUTs held
    whole in memory). Random, so nothing on the path can compress it."""

    BLOCK = 1 * MiB

    def __init__(self, block: bytes, size: int):
        self.block, self.size = memoryview(block), size

    def __len__(self) -> int:
        return self.size

    def chunks(self):
        left = self.size
        while left > 0:
            piece = self.block[:min(left, len(self.block))]
            left -= len(piece)
            yield piece

    def __bytes__(self) -> bytes:
        return b"".join(self.chunks())


class MinioS3:
    """put/get/remove on one bucket, errors turned into failure reasons."""

    def __init__(self, endpoint: str, bucket: str, access_key: str, secret_key: str, *, tls: bool,
                 ca_file: Path | None, pool_size: int = 10, timeout: float = 30.0, connect_timeout: float = 5.0):
        """`connect_timeout` also bounds each send of a request's body (urllib3 sends under it)."""
        import urllib3
        from minio import Minio
        from urllib.parse import urlsplit

        parts = urlsplit(endpoint)
        kwargs = {}
        if tls and ca_file:
            # One context for every connection: given a CA file, urllib3 builds and loads one per connection.
            kwargs = {"ssl_context": ssl.create_default_context(cafile=str(ca_file))}
        self.http = urllib3.PoolManager(num_pools=2, maxsize=pool_size, retries=False,
                                        timeout=urllib3.Timeout(connect=connect_timeout, read=timeout), **kwargs)
        # The region is given so the SDK does not ask for the bucket's location first.
        self.client = Minio(parts.netloc, access_key=access_key, secret_key=secret_key, secure=tls,
                            region="us-east-1", http_client=self.http)
        self.bucket = bucket
        self.endpoint = endpoint

    def put(self, key: str, data) -> None:
        """A PUT through a presigned URL, its body streamed: the SDK's put_object reads a whole object into
        memory first."""
        def send():
            url = self.client.presigned_put_object(self.bucket, key)
            body = data.chunks() if isinstance(data, Payload) else data
            response = self.http.request("PUT", url, body=body, headers={"Content-Length": str(len(data))},
                                         preload_content=True)
            if response.status >= 300:
                raise _error_from_xml(response.status, response.data.decode("utf-8", "replace"), self.bucket)
        self._call(send)

    def get(self, key: str) -> bytes:
        def read():
            response = self.client.get_object(self.bucket, key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()
        return self._call(read)

    def remove(self, key: str) -> None:
        self._call(lambda: self.client.remove_object(self.bucket, key))

    def close(self) -> None:
        self.http.clear()

    def _call(self, fn):
        from minio.error import InvalidResponseError, MinioException, S3Error as MinioS3Error, ServerError
        import urllib3.exceptions as ux

        try:
            return fn()
        except S3Error:
            raise
        except MinioS3Error as exc:
            raise s3_error(exc.code or "", exc.response.status if exc.response is not None else 0,
                           exc.message or str(exc), self.bucket) from None
        except ServerError as exc:
            raise s3_error("", exc.status_code, str(exc), self.bucket) from None
        except InvalidResponseError as exc:
            # The SDK wants application/xml; rclone's serve s3 answers errors as text/xml.
            text = str(exc)
            status = re.search(r"Response code: (\d{3})", text)
            raise _error_from_xml(int(status.group(1)) if status else 0, text, self.bucket) from None
        except MinioException as exc:
            raise S3Error(FailureReason.NETWORK_NO_GO, f"the S3 client failed: {str(exc)[:300]}") from None
        except ValueError as exc:  # the SDK's own checks, e.g. of the bucket's name
            raise S3Error(FailureReason.NETWORK_NO_GO, f"the S3 client refused: {str(exc)[:300]}") from None
        except ux.SSLError as exc:
            raise S3Error(FailureReason.CERTIFICATE_MISMATCH, f"TLS refused: {exc}") from None
        except ux.MaxRetryError as exc:
            if isinstance(exc.reason, ux.SSLError):
                raise S3Error(FailureReason.CERTIFICATE_MISMATCH, f"TLS refused: {exc.reason}") from None
            raise S3Error(FailureReason.RECEIVER_UNREACHABLE, f"no answer: {exc.reason}") from None
        except (ux.HTTPError, OSError) as exc:
            raise S3Error(FailureReason.RECEIVER_UNREACHABLE, f"no answer: {exc}") from None


def xml_code(text: str) -> str:
    """The `<Code>` of an S3 error answer (its XML body, or the SDK's words around it); "" if none."""
    code = re.search(r"<Code>([^<]{1,64})</Code>", text)
    return code.group(1) if code else ""


def error_code(exc: BaseException) -> str:
    """The S3 error code of an SDK exception. The SDK wants application/xml and calls rclone's serve s3's
    text/xml errors "non-XML" (InvalidResponseError), with the body in its message."""
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) and code else xml_code(str(exc))


def _error_from_xml(status: int, text: str, bucket: str) -> "S3Error":
    """An S3 error answer (its XML body, or the SDK's words around it) as a failure reason."""
    message = re.search(r"<Message>([^<]{0,300})</Message>", text) or re.search("(.{0,200})", text)
    return s3_error(xml_code(text), status, message.group(1), bucket)


def s3_error(code: str, status: int, message: str, bucket: str) -> S3Error:
    if code == "NoSuchBucket":
        return S3Error(FailureReason.NETWORK_NO_GO, f"the receiver has no bucket {bucket!r}")
    reason = classify(f"{code} StatusCode: {status}", default=FailureReason.NETWORK_NO_GO)
    if reason == FailureReason.AUTH_FAILED:
        return S3Error(reason, f"the receiver refused the keys: {code or status} {message}")
    if reason == FailureReason.RECEIVER_FULL:
        return S3Error(reason, f"the receiver has no space left: {code or status}")
    return S3Error(FailureReason.NETWORK_NO_GO, f"the receiver answered {status} {code}: {message}".strip())

