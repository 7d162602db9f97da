from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from portal.lib import crypto


class Command(BaseCommand):
    help = ("Re-encrypt every stored secret (grant and hand-entered S3 secret keys) under the newest key "
            "in DTN_ENCRYPTION_KEYS. Put a new key first in the list, run this, then drop the old key.")

    def handle(self, *args, **options):
        rotated, unreadable = 0, []
        for model, field in crypto.ciphertext_fields():
            # Batches by primary key rather than one open cursor: SQLite gives no
            # isolation between a cursor and updates to the same table.
            last = None
            while True:
                rows = model.objects.exclude(**{field: ""}).order_by("pk")
                if last is not None:
                    rows = rows.filter(pk__gt=last)
                batch = list(rows.values_list("pk", field)[:500])
                if not batch:
                    break
                last = batch[-1][0]
                for pk, ciphertext in batch:
                    try:
                        fresh = crypto.rotate(ciphertext)
                    except crypto.DecryptionError:
                        unreadable.append(f"{model._meta.label}.{field} of {pk}")
                        continue
                    with transaction.atomic():
                        # Conditional on what was read: a secret replaced meanwhile is left alone.
                        rotated += model.objects.filter(pk=pk, **{field: ciphertext}).update(**{field: fresh})
        self.stdout.write(f"re-encrypted {rotated} secret(s) under the newest key")
        if unreadable:
            # Names rows, never values: this output may be kept in a log.
            raise CommandError(f"{len(unreadable)} secret(s) open with no configured key, left as they were: "
                               + ", ".join(unreadable[:20]))
