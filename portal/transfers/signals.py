"""What other apps may listen to (notifications, for one).

`transfer_event` is sent once per event the portal records on a transfer
(`Transfer.log`: queued, started, succeeded, failed, canceled, stall, ...),
after the transaction that recorded it commits: a listener never sees a
state that was rolled back, and its own failure cannot undo the change.
Arguments: sender=Transfer, transfer=<Transfer>, kind=str, message=str.
"""

from django.dispatch import Signal

transfer_event = Signal()
