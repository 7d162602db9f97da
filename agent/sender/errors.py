"""What ends an attempt before its last step, and what becomes of the command:

    TransferFailed   the command fails, with a reason from the closed list (dtn_protocol/failures.py)
    Canceled         a person asked to stop (the portal's reply said so): the command ends canceled
    Interrupted      the agent is shutting down: the command stays leased, and resumes when it starts again
    JobLost          rclone forgot a running job (it restarted): the job is started again, up to a limit
    BadDestination   a receiver as the portal described it cannot be used (a command's, or a check task's)

A PortalError (agent/loop/portal.py) is not the attempt's to handle: a lost lease or a revoked
token goes through it to the controller.
"""

from __future__ import annotations

from agent.failures import ReasonedError


class TransferFailed(ReasonedError):
    pass


class Canceled(Exception):
    pass


class Interrupted(Exception):
    pass


class JobLost(Exception):
    pass


class BadDestination(ValueError):
    pass
