"""The one way tests and benchmarks start the product's processes, each stopped (and its
files removed) by whoever started it, whatever the test did:

- `PortalServer`: the portal as a site runs it (gunicorn, the box's config), migrated first;
- `Agent`: `python -m agent` as an operator runs it, its token in a 0600 secrets file,
  driving its own `rclone rcd` or a `Sidecar`'s (the docker compose layout);
- `S3Server`: `rclone serve s3` over a folder, as a receiver runs it;
- `Person`: a signed-up user speaking the portal's API;
- `Received`: the bytes a receiver's sockets took in on its port, counted by the kernel (root, `ss`);
- `ProductInBed`: all of it inside the test bed (Bob's TLS receiver granting Alice, her sender);
- each of them on this host (`LOCAL`) or in a namespace of the test bed (`InBed(bed, role)`).

The demo (portal/box) starts the portal and the agents with the same commands
(portal/box/processes.py); the compose tests (tests/deploy) start what the compose files say.
"""

from tests.harness.agent import Agent, Sidecar
from tests.harness.bed import ProductInBed
from tests.harness.files import MiB, Scratch, sha256, wait_for, write_random
from tests.harness.people import Person
from tests.harness.places import LOCAL, InBed
from tests.harness.portal import PortalServer
from tests.harness.procs import memory_mib
from tests.harness.received import Received
from tests.harness.s3 import RCLONE, S3Server, csv_quote, new_keys

__all__ = ["Agent", "Sidecar", "ProductInBed", "MiB", "Scratch", "sha256", "wait_for", "write_random", "Person",
           "LOCAL", "InBed", "PortalServer", "memory_mib", "Received", "RCLONE", "S3Server", "csv_quote", "new_keys"]
