"""The rules for what a person may ask to send, in one place.

The send page's form and the API's serializer both call these functions, so a
path refused on one is refused on the other with the same words. Each function
returns the cleaned value or raises django.core.exceptions.ValidationError
(DRF turns that into a field error too)."""

from __future__ import annotations

import ipaddress
import re
import unicodedata

from django.core.exceptions import ValidationError

from dtn_protocol.options import TUNING_BOUNDS as AGENT_TUNING_BOUNDS
from dtn_protocol.units import MiB
from portal.transfers.choices import Overwrite

MAX_SOURCES = 1000
MAX_PATH_LENGTH = 4096
# S3 object keys are at most 1024 bytes; the prefix leaves room for file names.
MAX_PREFIX_BYTES = 768
MAX_LABEL_LENGTH = 200
PORT_RANGE_MESSAGE = "A port is a whole number from 1 to 65535."
MAX_KEY_LENGTH = 128
MAX_SECRET_LENGTH = 256

DEFAULT_OVERWRITE = Overwrite.UPDATE_CHANGED
DEFAULT_VERIFY_CHECKSUMS = True

_BANDWIDTH = re.compile(r"^(\d{1,9})(\.\d{1,3})?([BKMGTP]?)$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_HOSTNAME_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_KEY = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces


def _is_control(char: str) -> bool:
    # Cc covers C0, DEL and C1; line and paragraph separators break logs and CSVs alike.
    return unicodedata.category(char) == "Cc" or char in "\u2028\u2029"


def _shown(value: str) -> str:
    """A value safe to quote back in an error message."""
    return "".join(f"\\x{ord(c):02x}" if _is_control(c) else c for c in value)[:200]


def relative_path(value: str, what: str = "A source") -> str:
    """A path inside the sender's send folder, normalised ('a//b/./c/' -> 'a/b/c').

    Refused: absolute paths, any '..' component, NUL and control characters.
    '.' alone names the whole send folder."""
    if not isinstance(value, str) or value == "":
        raise ValidationError(f"{what} path cannot be empty.", code="blank")
    if any(_is_control(c) for c in value):
        raise ValidationError(f"{what} path cannot contain control characters: '{_shown(value)}'.",
                              code="control")
    if len(value) > MAX_PATH_LENGTH:
        raise ValidationError(f"{what} path is longer than {MAX_PATH_LENGTH} characters.", code="too_long")
    if value.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", value):
        raise ValidationError(f"{what} path must be relative to your send folder, not absolute: "
                              f"'{_shown(value)}'.", code="absolute")
    parts = [part for part in value.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValidationError(f"{what} path cannot contain '..': '{_shown(value)}'.", code="parent")
    return "/".join(parts) or "."


def source_paths(value) -> list[str]:
    """One or more sources: a list (API) or text with one path per line (page).
    Duplicates are dropped, order kept."""
    if isinstance(value, str):
        lines = [line.rstrip("\r") for line in value.split("\n")]
        items = [line for line in lines if line.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ValidationError("Give the source paths as a list.", code="invalid")
    if not items:
        raise ValidationError("Name at least one file or directory to send.", code="required")
    if len(items) > MAX_SOURCES:
        raise ValidationError(f"At most {MAX_SOURCES} source paths per transfer.", code="too_many")
    cleaned: list[str] = []
    for item in items:
        path = relative_path(item)
        if path not in cleaned:
            cleaned.append(path)
    return cleaned


def destination_prefix(value: str | None) -> str:
    """Where under the bucket the files land; '' is the bucket's top."""
    if value is None or value.strip("/") == "":
        return ""
    prefix = relative_path(value, what="The destination")
    if prefix == ".":
        return ""
    if len(prefix.encode()) > MAX_PREFIX_BYTES:
        raise ValidationError(f"The destination prefix is longer than {MAX_PREFIX_BYTES} bytes.",
                              code="too_long")
    return prefix


def bandwidth_limit(value: str | None) -> str:
    """rclone's --bwlimit in its simple form: '50M', '1.5G', '800K' (bytes/s). '' or '0' is no limit."""
    text = (value or "").strip().upper()
    if text in ("", "0", "OFF"):
        return ""
    match = _BANDWIDTH.match(text)
    if not match:
        raise ValidationError("Write the limit as a number with an optional unit B, K, M, G, T or P "
                              "(bytes per second), e.g. 50M.", code="invalid")
    if float(match.group(1) + (match.group(2) or "")) == 0:
        return ""
    return text


# The agent's own bounds, so the portal refuses what the agent would; part sizes in MiB here.
TUNING_BOUNDS = {"transfers": AGENT_TUNING_BOUNDS["transfers"],
                 "upload_concurrency": AGENT_TUNING_BOUNDS["upload_concurrency"],
                 "chunk_size_mib": tuple(b // MiB for b in AGENT_TUNING_BOUNDS["chunk_size"])}


def tuning_range_message(low: int, high: int) -> str:
    return f"Leave it empty for the agent to choose, or give a whole number from {low} to {high}."


def tuning(values: dict) -> dict:
    """The user's overrides of the agent's choices, as the command carries them (chunk size in bytes).
    Raises ValidationError with one message per field."""
    errors, out = {}, {}
    for name, (low, high) in TUNING_BOUNDS.items():
        value = values.get(name)
        if value in (None, ""):
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            errors[name] = ValidationError(tuning_range_message(low, high), code="range")
            continue
        if name == "chunk_size_mib":
            out["chunk_size"] = value * 1024 * 1024
        else:
            out[name] = value
    if errors:
        raise ValidationError(errors)
    return out


def label(value: str | None) -> str:
    text = (value or "").strip()
    if len(text) > MAX_LABEL_LENGTH:
        raise ValidationError(f"A label is at most {MAX_LABEL_LENGTH} characters.", code="too_long")
    if any(_is_control(c) for c in text):
        raise ValidationError("A label cannot contain control characters.", code="control")
    return text


def overwrite(value: str | None) -> str:
    if value in (None, ""):
        return DEFAULT_OVERWRITE
    if value not in Overwrite.values:
        raise ValidationError(f"Choose {' or '.join(Overwrite.values)}.", code="invalid_choice")
    return value


def bucket_name(value: str | None) -> str:
    """S3's bucket naming rules (the subset every S3 server accepts)."""
    text = (value or "").strip()
    if not text:
        raise ValidationError("Name the bucket.", code="required")
    if (not _BUCKET.match(text) or ".." in text or ".-" in text or "-." in text
            or re.match(r"^\d+\.\d+\.\d+\.\d+$", text)):
        raise ValidationError("A bucket name is 3-63 lower-case letters, digits, dots and hyphens, "
                              "starting and ending with a letter or digit.", code="invalid")
    return text


def s3_host(value: str | None) -> str:
    """A host name or IP address, without scheme, port or path."""
    text = (value or "").strip()
    if not text:
        raise ValidationError("Give the S3 endpoint's host name or address.", code="required")
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        pass
    labels = text.rstrip(".").split(".")
    if len(text) > 253 or not all(_HOSTNAME_LABEL.match(part) for part in labels):
        raise ValidationError("Give only a host name or IP address, e.g. s3.example.org "
                              "(no https://, port or path).", code="invalid")
    return text.rstrip(".").lower()


def s3_port(value) -> int:
    if value in (None, ""):
        raise ValidationError("Give the S3 endpoint's port.", code="required")
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise ValidationError(PORT_RANGE_MESSAGE, code="invalid") from None
    if not 1 <= port <= 65535:
        raise ValidationError(PORT_RANGE_MESSAGE, code="invalid")
    return port


def access_key(value: str | None) -> str:
    text = (value or "").strip()
    if not text:
        raise ValidationError("Give the access key.", code="required")
    if len(text) > MAX_KEY_LENGTH or not _KEY.match(text):
        raise ValidationError(f"An access key is up to {MAX_KEY_LENGTH} printable characters without spaces.",
                              code="invalid")
    return text


def secret_key(value: str | None) -> str:
    # Never quoted back: this is the one input whose value must not reach a page.
    text = value or ""
    if not text:
        raise ValidationError("Give the secret key.", code="required")
    if len(text) > MAX_SECRET_LENGTH or not _KEY.match(text):
        raise ValidationError(f"A secret key is up to {MAX_SECRET_LENGTH} printable characters without spaces.",
                              code="invalid")
    return text


def endpoint_url(host: str, port: int, tls: bool) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}"


S3_FIELDS = ("s3_host", "s3_port", "s3_bucket", "s3_access_key", "s3_secret_key")


def _destination_choice(receiver, s3_values: dict) -> str:
    """'container' or 's3': exactly one way of naming the destination.

    `s3_values` holds the hand-entered fields as given (before their own checks),
    so a half-filled S3 form is reported field by field."""
    given = {name for name in S3_FIELDS if s3_values.get(name) not in (None, "")}
    if receiver and given:
        raise ValidationError({"receiver": ValidationError(
            "Name a receiver container or an S3 endpoint, not both.", code="both")})
    if receiver:
        return "container"
    if given:
        return "s3"
    raise ValidationError({"receiver": ValidationError(
        "Name the receiver: its container ID, or an S3 endpoint's details.", code="required")})


_S3_CHECKS = {"s3_host": s3_host, "s3_port": s3_port, "s3_bucket": bucket_name,
              "s3_access_key": access_key, "s3_secret_key": secret_key}


def destination(receiver, values: dict) -> dict | None:
    """None when a receiver container is named; the cleaned endpoint and keys when
    an S3 endpoint is entered by hand. Errors come keyed by field name.

    `values` holds the s3_* inputs as given and `s3_tls` (absent means on)."""
    if _destination_choice(receiver, values) == "container":
        return None
    cleaned, errors = {}, {}
    for name, check in _S3_CHECKS.items():
        try:
            cleaned[name] = check(values.get(name))
        except ValidationError as exc:
            errors[name] = exc.error_list
    if errors:
        raise ValidationError(errors)
    return {"host": cleaned["s3_host"], "port": cleaned["s3_port"], "tls": bool(values.get("s3_tls", True)),
            "bucket": cleaned["s3_bucket"], "access_key": cleaned["s3_access_key"],
            "secret_key": cleaned["s3_secret_key"]}

