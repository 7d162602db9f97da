"""What /metrics shows, read from the database when Prometheus scrapes.

Every figure is a query, not a counter kept in a process: the portal runs several server processes
(and may run several replicas), each answering some scrapes, and all of them must tell one story.
A per-process counter would go back and forth between scrapes as they land on different workers, and
prometheus-client's multiprocess mode would need a shared writable directory per host, which the
image's read-only root and a second replica do not give. The database already holds every figure."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from dtn_protocol.states import TransferState
from portal.containers.models import Container, Role
from portal.notifications.models import Delivery, Status
from portal.transfers.models import Command, Transfer

# Seconds from a command's queueing to its claim: an idle agent holding a long-poll claims in well under a
# second; a busy or offline one leaves it for minutes.
CLAIM_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600)


class PortalCollector(Collector):
    def collect(self):
        yield from self._transfers()
        yield self._online()
        yield self._claim_latency()
        outbox = GaugeMetricFamily("dtn_notification_outbox_depth",
                                   "Mail and webhook deliveries waiting to be sent (first try or a retry).")
        outbox.add_metric([], Delivery.objects.filter(status=Status.PENDING).count())
        yield outbox

    def _transfers(self):
        states = GaugeMetricFamily("dtn_transfers", "Transfers by state.", labels=["state"])
        counted = dict(Transfer.objects.order_by().values_list("state").annotate(n=Count("id")))
        for state in TransferState:
            states.add_metric([state.value], counted.get(state.value, 0))
        yield states
        # Every byte moved: those counted once as progress and those sent again after a stop or a lost lease.
        sums = Transfer.objects.aggregate(moved=Sum(F("bytes_transferred") + F("bytes_resent")),
                                          verified=Sum("bytes_verified"))
        moved = CounterMetricFamily("dtn_transfer_bytes_transferred",
                                    "Bytes moved over the wire by every transfer (every lease, every attempt).")
        moved.add_metric([], sums["moved"] or 0)
        yield moved
        verified = CounterMetricFamily("dtn_transfer_bytes_verified",
                                       "Bytes of files whose receiver SHA-256 equals the sender's.")
        verified.add_metric([], sums["verified"] or 0)
        yield verified

    def _online(self):
        online = GaugeMetricFamily("dtn_agents_online", "Containers whose agent heartbeats, by role.",
                                   labels=["role"])
        counted = dict(Container.objects.filter(last_seen_at__gt=Container.online_since()).order_by()
                       .values_list("role").annotate(n=Count("id")))
        for role in Role:
            online.add_metric([role.value], counted.get(role.value, 0))
        return online

    def _claim_latency(self):
        waited = ExpressionWrapper(F("claimed_at") - F("created_at"), output_field=DurationField())
        claimed = Command.objects.filter(claimed_at__isnull=False).annotate(waited=waited)
        counts = claimed.aggregate(
            total=Count("id"), seconds=Sum("waited"),
            **{f"le{index}": Count("id", filter=Q(waited__lte=timedelta(seconds=bound)))
               for index, bound in enumerate(CLAIM_BUCKETS)})
        buckets = [(floatToGoString(bound), counts[f"le{index}"]) for index, bound in enumerate(CLAIM_BUCKETS)]
        buckets.append(("+Inf", counts["total"]))
        total = counts["seconds"]
        return HistogramMetricFamily(
            "dtn_claim_latency_seconds", "From a command's queueing to its latest claim by an agent "
                                         "(commands still in the queues).",
            buckets=buckets, sum_value=total.total_seconds() if total else 0.0)
