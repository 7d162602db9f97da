"""File names exactly as they are (docs/agent.md, "Names"): the rclone settings under which a
file lands under its source name byte for byte, the names that cannot be carried that way
(refused per file, never renamed), and how a receive folder compares names.

Why each setting (measured with rclone 1.75, tests/e2e/test_exact_names.py):
- rclone's sync normalises Unicode when it matches names: a folder holding `café.txt` as NFC
  and as NFD is one file to it ("Duplicate object found in source - ignoring"), and a second
  copy overwrites one with the other. `NoUnicodeNormalization` (sender) and
  `--no-unicode-normalization` (receiver) make every name its own.
- Each backend translates names through its "encoding". The sender's local remote uses `None`:
  a name is read as it is. Its S3 remote uses `None` too for an S3 store that keeps keys as sent
  (MinIO, a hand-entered endpoint). The receiver's `rclone serve s3` reads a key as rclone's
  standard form and writes it through its local backend, whose encoding must stay `Slash,Dot`
  (its default, set explicitly: a `／` in a key then lands as `／`, not as a folder separator);
  and it lists a control character in a name (a tab, a newline) as its picture (`␉`, `␊`). So
  toward such a receiver (its heartbeat says `keys: "rclone"`) the sender's S3 remote uses
  `Ctl,Del`: a newline goes as `␊`, lands as a newline, and is listed back as the same name, so a
  second send finds the file there instead of sending it again.
- What no setting carries, refused: a name that is not UTF-8 (S3 keys are UTF-8 text); a path
  part over 255 bytes (the receiving filesystem's limit); U+201B `‛`, rclone's quote character,
  which its local backend cannot open a file by; and the control pictures U+2401-U+241F and
  U+2421 (`␊`, `␡`, ...), which `serve s3` turns into the control characters they picture, so
  `a␊b` would land as `a` newline `b`, or over a file of that name."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

# The sender's remotes: names read and written as they are.
LOCAL_ENCODING = "None"
S3_ENCODING = "None"
# Toward a receiver whose S3 server is rclone's (see above).
RCLONE_SERVER_S3_ENCODING = "Ctl,Del"
# What a receiver with rclone's S3 server says of its keys in its heartbeat.
RCLONE_KEYS = "rclone"


def s3_encoding(keys: str | None) -> str:
    return RCLONE_SERVER_S3_ENCODING if keys == RCLONE_KEYS else S3_ENCODING

# The receiver's serve s3 (see above): rclone's default for a local folder, said explicitly.
SERVE_LOCAL_ENCODING = "Slash,Dot"
# rclone's global option (an rc call's _config) that keeps NFC and NFD names apart.
JOB_CONFIG = {"NoUnicodeNormalization": True}
SERVE_FLAGS = ["--no-unicode-normalization", "--local-encoding", SERVE_LOCAL_ENCODING,
               # No "fixup" of a name to another one differing by case: a key names one file.
               "--vfs-case-insensitive=false"]

NAME_MAX = 255
# The longest S3 key (AWS, MinIO): an S3 store keeps a path as one key. rclone's serve s3 keeps it as a
# path of folders instead, where only each part's length (NAME_MAX) is the limit.
KEY_MAX = 1024
QUOTE = "\u201b"
CONTROL_PICTURES = frozenset(chr(c) for c in range(0x2401, 0x2420)) | {"\u2421"}


def to_rclone(path: str) -> str:
    """A path as rclone names it inside (its "standard" encoding): in a list of files for it, or in a
    call naming one file. A control character is its picture (a raw one in a list is silently not
    found), a literal fullwidth solidus is quoted. Only names `refusal` passes come here."""
    out = []
    for part in path.split("/"):
        part = "".join(chr(0x2400 + ord(ch)) if ord(ch) < 0x20 else "\u2421" if ch == "\x7f"
                       else QUOTE + ch if ch == "\uff0f" else ch for ch in part)
        out.append(QUOTE + part if part in ("\uff0e", "\uff0e\uff0e") else part)
    return "/".join(out)


def from_rclone(path: str) -> str:
    """A path as rclone reports it (its finished transfers, a listing) back to the name on disk: the
    inverse of to_rclone for every name refusal passes."""
    out, quoted = [], False
    for ch in path:
        if quoted:
            out.append(ch)
            quoted = False
        elif ch == QUOTE:
            quoted = True
        elif 0x2401 <= ord(ch) <= 0x241F:
            out.append(chr(ord(ch) - 0x2400))
        elif ch == "\u2421":
            out.append("\x7f")
        else:
            out.append(ch)
    return "".join(out)


def local_remote(root: Path | str, *, follow_links: bool = False) -> dict:
    """rclone's inline local remote for a folder of the send folder. `follow_links`: only with a
    list of files the agent walked, where every link named is one that stays inside."""
    remote = {"type": "local", "_root": str(root), "encoding": LOCAL_ENCODING,
              # The agent reports each link it leaves out itself (ledger.py): no warning per link from rclone.
              "skip_links": "true"}
    if follow_links:
        remote["copy_links"] = "true"
    return remote


def refusal(rel: str, name_max: int = NAME_MAX, key_room: int | None = None) -> str:
    """Why a path (relative, "/"-separated, as os gives it: undecodable bytes as surrogates)
    cannot be carried under its exact name; "" when it can. `key_room`: the bytes an S3 key has
    left for the path after the destination's prefix (None: no such limit)."""
    raw = os.fsencode(rel)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return (f"its name is not valid UTF-8 (byte 0x{raw[bad.start]:02x} at {bad.start}): S3 names are UTF-8 text,"
                " and renaming it is not ours to do")
    for part in text.split("/"):
        size = len(part.encode("utf-8"))
        if size > name_max:
            return (f"a part of its path is {size} bytes long ({part[:40]!r}...); the receiving filesystem takes at"
                    f" most {name_max}")
    if key_room is not None and len(text.encode("utf-8")) > key_room:
        return (f"its path is {len(text.encode('utf-8'))} bytes long; under the destination's prefix an S3 key"
                f" holds at most {key_room} more (keys are at most {KEY_MAX} bytes)")
    if QUOTE in text:
        return "its name holds U+201B (‛), which rclone cannot carry (its quote character for names)"
    picture = next((ch for ch in text if ch in CONTROL_PICTURES), None)
    if picture is not None:
        return (f"its name holds U+{ord(picture):04X} ({picture}), which the receiver's S3 server would store as the"
                " control character it pictures")
    return ""


def fold(name: str, *, case_insensitive: bool, normalization_insensitive: bool) -> str:
    """The name as a receiving filesystem that ignores case and/or Unicode form compares it."""
    if normalization_insensitive:
        name = unicodedata.normalize("NFD", name)
    if case_insensitive:
        name = name.casefold()
        if normalization_insensitive:
            name = unicodedata.normalize("NFD", name)
    return name


def probe_folder(folder: Path) -> dict:
    """How the filesystem of `folder` compares names, found by trying: a file made under one name,
    looked for under the same name in another case and in another Unicode form. Sent with the
    receiver's heartbeat; the portal hands it to senders, which refuse two of their paths that
    would land as one file (name_collision)."""
    stem = f".dtn-names-probe-{os.getpid()}-"
    made = folder / (stem + "\u00c9a")  # "Éa", NFC
    try:
        made.touch()
        try:
            case = (folder / (stem + "\u00e9A")).exists()
            form = (folder / (stem + unicodedata.normalize("NFD", "\u00c9a"))).exists()
        finally:
            made.unlink(missing_ok=True)
        name_max = os.pathconf(folder, "PC_NAME_MAX")
    except OSError:
        return {}
    return {"case_insensitive": case, "normalization_insensitive": form, "name_max": min(int(name_max), NAME_MAX)}
