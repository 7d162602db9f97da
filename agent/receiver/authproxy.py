"""rclone serve s3's auth proxy: run by rclone, once per access key it has no answer for.

Not imported by the agent: rclone runs this file by path (`python -I -S authproxy.py`), with the
standard library only, so each call starts in milliseconds. It reads `{"user": <access key>, ...}`
on stdin, asks the agent's grant book (agent/receiver/grantbook.py) over the unix socket named by
DTN_GRANTS_SOCKET (in rclone's environment, which it inherits), and writes the book's answer on
stdout: a backend with that key's secret, or `{}`, which rclone refuses. Any failure is `{}`."""

import json
import os
import socket
import sys


def ask(user: str) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(os.environ["DTN_GRANTS_SOCKET"])
        sock.sendall(json.dumps({"user": user}).encode() + b"\n")
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    answer = json.loads(data)
    return answer if isinstance(answer, dict) else {}


def main() -> int:
    try:
        asked = json.load(sys.stdin)
        user = asked.get("user") if isinstance(asked, dict) else None
        answer = ask(user) if isinstance(user, str) and user else {}
    except Exception:  # noqa: BLE001 - whatever went wrong, the key is refused
        answer = {}
    json.dump(answer, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
