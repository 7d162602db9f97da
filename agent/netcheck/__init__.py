"""The network check: before a transfer (and on demand), what stands between
this sender and the receiver's S3 endpoint, in plain words, with a verdict.

Steps, each recorded whether it passes or not:
1. the endpoint's name resolves;
2. it accepts TCP connections: several connects timed, min/median/max RTT;
3. TLS: it presents exactly the certificate the portal pinned;
4. S3: the keys work and the bucket is writable (a small object written, read
   back, removed);
5. a bounded throughput probe of timed S3 PUTs: one stream, then several in
   parallel (a few tens of MiB, ~10 s at most);
6. this host's TCP buffer limits and congestion control, against the path's
   bandwidth-delay product, with tuning advice;
7. the receiver's free space against the transfer's size.

The verdict is go, warn or no_go. A no-go names the failure reason from the
closed list (dtn_protocol/failures.py): receiver_unreachable, certificate_mismatch,
auth_failed, receiver_full, or network_no_go for the rest.

The probe talks S3 through the minio SDK (not rclone) so it can time each PUT
and tell the path from rclone's own behaviour; its objects are named
`.dtn-netcheck-<id>-<n>` at the top of the bucket, where no folder is left
behind, and removed afterwards.

    checker.py  the steps and the verdict (Checker, Target)
    probe.py    the throughput probe
    s3.py       put/get/remove through the minio SDK, errors as failure reasons
    host.py     this host: TCP limits and counters from /proc, connect, resolve
    limits.py   what a check may cost
    report.py   the report in words
"""

from agent.netcheck.checker import Checker, Target
from agent.netcheck.host import host_tcp, tcp_connect_to, tcp_counters
from agent.netcheck.limits import Limits
from agent.netcheck.report import GO, NO_GO, WARN, attach_tuning, human_rate, human_seconds, refused, summarise
from agent.netcheck.s3 import S3, MinioS3, Payload, S3Error

__all__ = ["Checker", "Target", "Limits", "S3", "S3Error", "MinioS3", "Payload", "host_tcp", "tcp_counters",
           "tcp_connect_to", "refused", "attach_tuning", "summarise", "human_rate", "human_seconds", "GO", "WARN",
           "NO_GO"]
