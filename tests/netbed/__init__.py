"""The test bed: a portal host, a sender site and a receiver site in network
namespaces, with a WAN of settable rate, loss and delay between the sites.

Public surface: Bed, Link, BedUnavailable, ensure_tools, leftovers,
sweep_stale, mathis_mbit. See docs/testbed.md."""

from tests.netbed.bed import PORTAL_IP, Bed, Link, LinkError, created_run_ids
from tests.netbed.host import BedUnavailable, ensure_tools, leftovers, sweep_stale, unavailable_reason
from tests.netbed.measure import mathis_mbit, rate_mbit, sum_samples

__all__ = ["Bed", "Link", "LinkError", "BedUnavailable", "PORTAL_IP", "created_run_ids", "ensure_tools",
           "leftovers", "sweep_stale", "unavailable_reason", "mathis_mbit", "rate_mbit", "sum_samples"]
