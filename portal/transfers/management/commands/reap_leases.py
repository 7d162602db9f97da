import time

from django.conf import settings
from django.core.management.base import BaseCommand

from portal.transfers import reaper


class Command(BaseCommand):
    help = ("Re-queue commands whose agent stopped reporting, failing them after the last attempt. "
            "The portal server already runs this loop; use this for a separate reaper process.")

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="one pass, then exit")

    def handle(self, *args, once=False, **options):
        while True:
            counts = reaper.reap_expired_leases()
            if once:
                self.stdout.write(f"requeued {counts['requeued']}, failed {counts['failed']}")
                return
            time.sleep(settings.DTN_REAPER_SECONDS)
