"""/metrics on the database: what each figure counts, who may scrape, and the settings that say so.
(The live portal with two workers during a real transfer: tests/e2e/test_metrics_and_logs.py.)"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from portal.containers.models import Container
from portal.notifications.models import Delivery
from portal.transfers.models import Command, Transfer
from tests.portal.conftest import register
from tests.portal.sending import HAND_S3, send
from tests.portal.test_env import _settings_process

TOKEN = "scrape-token-0123456789abcdef"


def scrape(client: Client, **headers) -> dict:
    response = client.get("/metrics", HTTP_HOST="localhost", **headers)
    assert response.status_code == 200, response.content
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.content.decode()) for sample in family.samples}


@pytest.fixture
def loopback(settings):
    settings.DTN_METRICS_TOKEN = None
    return Client(REMOTE_ADDR="127.0.0.1")


@pytest.mark.django_db
def test_each_figure_counts_what_the_database_holds(alice, bob, loopback):
    sender = register(alice, "alice-sender", "sender")
    register(bob, "bob-receiver", "receiver")
    Container.objects.filter(pk=sender.pk).update(last_seen_at=timezone.now())
    first, second = (send(alice, sender, s3=dict(HAND_S3)) for _ in range(2))
    Transfer.objects.filter(pk=first.pk).update(state="active", bytes_transferred=1000, bytes_verified=400)
    Transfer.objects.filter(pk=second.pk).update(state="succeeded", bytes_transferred=5000, bytes_verified=5000)
    # One command claimed 0.3 s after it was queued, one 45 s after, and one never.
    created = timezone.now() - timedelta(minutes=5)
    commands = list(Command.objects.filter(transfer__in=[first, second]))
    Command.objects.filter(pk=commands[0].pk).update(created_at=created, claimed_at=created + timedelta(seconds=0.3))
    Command.objects.filter(pk=commands[1].pk).update(created_at=created, claimed_at=created + timedelta(seconds=45))
    Delivery.objects.create(user=alice, channel="email", event="succeeded")
    Delivery.objects.create(user=alice, channel="email", event="failed", status="delivered")

    values = scrape(loopback)
    assert values[("dtn_transfers", (("state", "active"),))] == 1
    assert values[("dtn_transfers", (("state", "succeeded"),))] == 1
    assert values[("dtn_transfers", (("state", "queued"),))] == 0
    assert values[("dtn_transfer_bytes_transferred_total", ())] == 6000
    assert values[("dtn_transfer_bytes_verified_total", ())] == 5400
    assert values[("dtn_agents_online", (("role", "sender"),))] == 1
    assert values[("dtn_agents_online", (("role", "receiver"),))] == 0  # registered, never seen
    histogram = {labels[0][1]: value for (name, labels), value in values.items()
                 if name == "dtn_claim_latency_seconds_bucket"}
    assert (histogram["0.25"], histogram["0.5"], histogram["30.0"], histogram["60.0"], histogram["+Inf"]) == \
        (0, 1, 1, 2, 2)
    assert values[("dtn_claim_latency_seconds_count", ())] == 2
    assert values[("dtn_claim_latency_seconds_sum", ())] == pytest.approx(45.3)
    assert values[("dtn_notification_outbox_depth", ())] == 1


@pytest.mark.django_db
def test_a_scrape_from_elsewhere_needs_the_token(settings):
    settings.DTN_METRICS_TOKEN = TOKEN
    elsewhere = Client(REMOTE_ADDR="203.0.113.9")
    refused = elsewhere.get("/metrics", HTTP_HOST="localhost")
    assert refused.status_code == 403 and "DTN_METRICS_TOKEN" in refused.json()["error"]
    assert scrape(elsewhere, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    wrong = Client(REMOTE_ADDR="127.0.0.1").get("/metrics", HTTP_HOST="localhost", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 401 and wrong.json()["error"] == "wrong metrics token"
    settings.DTN_METRICS_TOKEN = None  # no token set: a token given is wrong, not ignored
    assert elsewhere.get("/metrics", HTTP_HOST="localhost", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 401


@pytest.mark.django_db
def test_an_allowed_network_scrapes_without_a_token(settings):
    settings.DTN_METRICS_TOKEN = TOKEN
    from ipaddress import ip_network
    settings.DTN_METRICS_ALLOW_NETWORKS = [ip_network("10.1.0.0/16")]
    assert scrape(Client(REMOTE_ADDR="10.1.2.3"))
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics", HTTP_HOST="localhost").status_code == 403


def test_the_settings_read_the_networks_and_refuse_a_malformed_one(tmp_path):
    code = "from django.conf import settings; print(settings.DTN_METRICS_ALLOW_NETWORKS)"
    given = _settings_process(tmp_path, code, DTN_METRICS_ALLOW_IPS="10.0.0.0/8, 192.0.2.7")
    assert given.returncode == 0, given.stderr
    assert "IPv4Network('10.0.0.0/8')" in given.stdout and "IPv4Network('192.0.2.7/32')" in given.stdout
    bad = _settings_process(tmp_path, "pass", DTN_METRICS_ALLOW_IPS="10.0.0.0/8,not-a-network")
    assert bad.returncode != 0 and "DTN_METRICS_ALLOW_IPS" in bad.stderr
    fmt = _settings_process(tmp_path, "pass", DTN_LOG_FORMAT="yaml")
    assert fmt.returncode != 0 and "DTN_LOG_FORMAT must be one of plain, json, not 'yaml'" in fmt.stderr
