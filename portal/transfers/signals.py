"""What other apps may listen to (notifications and network checks, for two).

`transfer_event` is sent once per event the portal records on a transfer
(`Transfer.log`: queued, started, succeeded, failed, canceled, stall, ...),
after the transaction that recorded it commits: a listener never sees a
state that was rolled back, and its own failure cannot undo the change.
Arguments: sender=Transfer, transfer=<Transfer>, kind=str, message=str.

`network_check_reported` is sent when an agent's report carries the network
check its attempt began with, inside the report's transaction, the transfer row
locked: the listener records it (portal/netcheck/receivers.py), and its failure
fails the report.
Arguments: sender=Transfer, transfer=<Transfer>, command=<Command>, report=dict.
"""

from django.dispatch import Signal

transfer_event = Signal()
network_check_reported = Signal()
