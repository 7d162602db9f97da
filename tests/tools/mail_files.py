"""Reading what Django's file mail backend wrote: one file per connection, messages
in it separated by a line of 79 dashes."""

from __future__ import annotations

from email import message_from_bytes
from email.message import Message
from pathlib import Path

SEPARATOR = b"\n" + b"-" * 79 + b"\n"


def read_mail_dir(path: Path) -> list[Message]:
    path = Path(path)
    if not path.is_dir():
        return []
    mails = []
    for name in sorted(path.iterdir()):
        for chunk in name.read_bytes().split(SEPARATOR):
            if chunk.strip():
                mails.append(message_from_bytes(chunk))
    return mails
