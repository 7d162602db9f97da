"""What other apps may listen to (transfers, for one).

`grant_revoked` is sent when a grant is revoked, inside the transaction that
revokes it: a listener's changes commit or roll back with the revocation. A
listener answers how many queued sends it failed (the revocation logs the sum).
Arguments: sender=Grant, grant=<Grant>.
"""

from django.dispatch import Signal

grant_revoked = Signal()
