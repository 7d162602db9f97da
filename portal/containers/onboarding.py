"""What a person does next after registering a container (issue 25): a ready `.env` for the role's compose file
and the commands that start it, as docs/deployment.md ("A sender site", "A receiver site") gives them.

The `.env` holds the agent token, so it is rendered only on the page that answers the registration (never
cached, see containers_page) and exists nowhere else: nothing here is stored or logged."""

from __future__ import annotations

import secrets

from portal.containers.models import Role

SENDER_COMMANDS = [
    "chmod 600 .env",
    "setfacl -R -m u:10001:rX -m d:u:10001:rX /srv/dtn/outgoing",
    "docker compose -f docker-compose.sender.yml up -d --build",
]
RECEIVER_COMMANDS = [
    "chmod 600 .env",
    "mkdir -p /srv/dtn/incoming && chown 10001:10001 /srv/dtn/incoming",
    "docker compose -f docker-compose.receiver.yml up -d --build",
]


def env_lines(portal_url: str, token: str, role: str) -> list[str]:
    lines = [f"DTN_PORTAL_URL={portal_url}", f"DTN_AGENT_TOKEN={token}"]
    if role in (Role.SENDER, Role.BOTH):
        # The rclone sidecar's credentials never leave the site; made here so the block is ready to paste.
        lines += ["SEND_FOLDER=/srv/dtn/outgoing", "DTN_RCLONE_RC_USER=dtn",
                  f"DTN_RCLONE_RC_PASS={secrets.token_hex(24)}"]
    if role in (Role.RECEIVER, Role.BOTH):
        lines += ["RECEIVE_FOLDER=/srv/dtn/incoming",
                  "# the name or address senders reach this machine at:",
                  "DTN_RECEIVER_HOST=dtn.example.org", "DTN_RECEIVER_PORT=9443"]
    lines.append("# if the portal's certificate is self-signed, the path of your copy of portal.crt:")
    lines.append("# PORTAL_CA_FILE=/etc/dtn/portal.crt")
    return lines


def next_steps(request, container, token: str) -> dict:
    # The address this browser reached the portal at: the one the agent most likely reaches too (behind the
    # proxy, Django reads the forwarded host only when DTN_BEHIND_PROXY says so).
    portal_url = request.build_absolute_uri("/").rstrip("/")
    role = container.role
    commands = RECEIVER_COMMANDS if role == Role.RECEIVER else SENDER_COMMANDS
    compose = "docker-compose.receiver.yml" if role == Role.RECEIVER else "docker-compose.sender.yml"
    return {"container": container, "token": token, "env": "\n".join(env_lines(portal_url, token, role)),
            "commands": "\n".join(commands), "compose_file": compose,
            "is_receiver": role in (Role.RECEIVER, Role.BOTH), "is_sender": role in (Role.SENDER, Role.BOTH)}
