"""A receiver reports its certificate and its one address; senders get exactly that, and an address
that breaks the rule of dtn_protocol.endpoints is refused."""

import pytest

from agent.tls import ensure_certificate
from portal.grants.models import Grant
from tests.portal.conftest import agent_client, register
from tests.portal.sending import checked_in, claim, grant, send


@pytest.fixture
def certificate(tmp_path):
    return ensure_certificate(tmp_path / "tls", ["bob-dtn.example.org"])


@pytest.fixture
def bob_agent(bob_receiver):
    return agent_client(bob_receiver)


def beat(agent, **body):
    return agent.post("/api/agent/v1/heartbeat", body, format="json")


def test_the_certificate_is_recorded_when_its_fingerprint_matches(bob_agent, bob_receiver, certificate):
    response = beat(bob_agent, endpoint="https://bob-dtn.example.org:9443", certificate_pem=certificate.pem,
                    certificate_sha256=certificate.sha256)
    assert response.status_code == 200
    bob_receiver.refresh_from_db()
    assert bob_receiver.certificate_pem == certificate.pem
    assert bob_receiver.certificate_sha256 == certificate.sha256


def test_a_fingerprint_that_does_not_match_the_certificate_is_refused(bob_agent, bob_receiver, certificate, tmp_path):
    other = ensure_certificate(tmp_path / "other", ["elsewhere.example.org"])
    response = beat(bob_agent, certificate_pem=certificate.pem, certificate_sha256=other.sha256)
    assert response.status_code == 400 and response.json()["field"] == "certificate_sha256"
    bob_receiver.refresh_from_db()
    assert bob_receiver.certificate_pem in ("", None) and bob_receiver.last_seen_at is None


@pytest.mark.parametrize("body,field", [
    ({"certificate_pem": "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n",
      "certificate_sha256": "ab:cd"}, "certificate_pem"),
    ({"certificate_sha256": "ab:cd"}, "certificate_sha256"),
    ({"endpoint": "ftp://bob.example.org"}, "endpoint"),
    ({"endpoint": "not a url"}, "endpoint"),
    ({"endpoint": "https://bob.example.org"}, "endpoint"),  # no port
    ({"endpoint": "https://bob.example.org:9443/s3"}, "endpoint"),
])
def test_malformed_receiver_reports_are_refused_with_the_field(bob_agent, body, field):
    response = beat(bob_agent, **body)
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_the_receivers_address_is_every_grants_and_is_handed_to_the_sender(alice, alice_sender, alice_agent,
                                                                             bob_agent, bob_receiver, certificate):
    given = grant(bob_receiver, alice)
    response = beat(bob_agent, endpoint="HTTPS://Bob-DTN.example.org.:9443", certificate_pem=certificate.pem,
                    certificate_sha256=certificate.sha256)
    assert response.status_code == 200, response.content
    bob_receiver.refresh_from_db()
    assert bob_receiver.endpoint == "https://bob-dtn.example.org:9443"

    send(alice, alice_sender, receiver=bob_receiver)
    destination = claim(alice_agent).json()["payload"]["destination"]
    assert destination["kind"] == "receiver"
    assert destination["endpoint"] == "https://bob-dtn.example.org:9443"
    assert destination["tls"] is True
    assert destination["bucket"] == given.bucket
    assert destination["certificate_sha256"] == certificate.sha256
    assert destination["certificate_pem"] == certificate.pem


def test_a_heartbeat_carrying_a_grant_endpoint_changes_nothing(alice, alice_sender, alice_agent, bob_agent,
                                                               bob_receiver, certificate):
    """The old per-grant report, forged: a receiver's owner aiming the grantee's sender elsewhere."""
    given = grant(bob_receiver, alice)
    beat(bob_agent, endpoint="https://bob-dtn.example.org:9443", certificate_pem=certificate.pem,
         certificate_sha256=certificate.sha256)
    response = beat(bob_agent, grants=[{"grant_id": str(given.pk), "endpoint": "http://127.0.0.1:18999"}])
    assert response.status_code == 200
    send(alice, alice_sender, receiver=bob_receiver)
    destination = claim(alice_agent).json()["payload"]["destination"]
    assert destination["endpoint"] == "https://bob-dtn.example.org:9443" and destination["tls"] is True
    assert not hasattr(Grant, "endpoint") or "endpoint" not in {f.name for f in Grant._meta.fields}


@pytest.mark.parametrize("endpoint, words", [
    ("http://bob-dtn.example.org:9443", "pinned certificate"),
    ("https://127.0.0.1:9443", "loopback or link-local"),
    ("https://localhost:9443", "loopback or link-local"),
    ("https://[::1]:9443", "loopback or link-local"),
    ("https://169.254.169.254:80", "loopback or link-local"),
    ("https://[fe80::1]:9443", "loopback or link-local"),
    ("https://[::ffff:127.0.0.1]:9443", "loopback or link-local"),
    ("https://portal.example.org:9443", "the portal's own address"),
    ("https://testserver:9443", "the portal's own address"),
])
def test_an_address_other_sites_cannot_or_must_not_reach_is_refused_with_a_sentence(
        bob_agent, bob_receiver, certificate, settings, endpoint, words):
    settings.ALLOWED_HOSTS = ["portal.example.org", "testserver"]
    response = beat(bob_agent, endpoint=endpoint, certificate_pem=certificate.pem,
                    certificate_sha256=certificate.sha256)
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == "endpoint" and words in body["error"], body
    bob_receiver.refresh_from_db()
    assert bob_receiver.endpoint == "" and bob_receiver.last_seen_at is None


def test_a_plain_receiver_needs_the_portals_setting_and_no_certificate(bob_agent, bob_receiver, settings):
    response = beat(bob_agent, endpoint="http://bob-dtn.example.org:9000")
    assert response.status_code == 400 and "plain http:// receivers are off" in response.json()["error"]
    settings.DTN_ALLOW_PLAIN_ENDPOINTS = True
    assert beat(bob_agent, endpoint="http://bob-dtn.example.org:9000").status_code == 200
    bob_receiver.refresh_from_db()
    assert bob_receiver.endpoint == "http://bob-dtn.example.org:9000"


def test_local_addresses_are_accepted_where_the_portal_allows_them(bob_agent, bob_receiver, settings):
    """The box and one-host tests: everything on 127.0.0.1."""
    settings.DTN_ALLOW_LOCAL_ENDPOINTS = True
    assert beat(bob_agent, endpoint="https://127.0.0.1:9443").status_code == 200
    bob_receiver.refresh_from_db()
    assert bob_receiver.endpoint == "https://127.0.0.1:9443"


def test_private_networks_are_fine(bob_agent, bob_receiver):
    for endpoint in ("https://10.1.2.3:9443", "https://172.17.0.1:9443", "https://192.168.1.20:9443"):
        assert beat(bob_agent, endpoint=endpoint).status_code == 200, endpoint


def test_a_record_that_breaks_the_rule_fails_the_command_before_its_keys_leave(alice, alice_sender, alice_agent,
                                                                              bob_receiver):
    """A receiver's record changed behind the heartbeat's back (or stored before the rule)."""
    given = grant(bob_receiver, alice)
    checked_in(bob_receiver, endpoint="https://127.0.0.1:9443")
    transfer = send(alice, alice_sender, receiver=bob_receiver)
    assert claim(alice_agent).status_code == 204
    transfer.refresh_from_db()
    assert transfer.state == "failed" and transfer.fatal_reason == "destination_refused"
    assert given.secret_key() not in str(transfer.commands.values())


def test_only_the_pinned_certificate_is_stored_not_what_followed_it(bob_agent, bob_receiver, certificate, tmp_path):
    other = ensure_certificate(tmp_path / "other", ["elsewhere.example.org"])
    response = beat(bob_agent, certificate_pem=certificate.pem + other.pem, certificate_sha256=certificate.sha256)
    assert response.status_code == 200
    bob_receiver.refresh_from_db()
    assert bob_receiver.certificate_pem == certificate.pem


def test_a_receiver_serving_its_grants_from_minio_reports_minios_address(
        alice, alice_sender, alice_agent, bob_agent, bob_receiver, tmp_path):
    """The heartbeat of a receiver whose grants live in MinIO: MinIO's URL, and its public.crt as the
    certificate to pin."""
    public_crt = ensure_certificate(tmp_path / "minio-certs", ["minio.bob.example.org"])
    given = grant(bob_receiver, alice)
    url = "https://minio.bob.example.org:9000"
    response = beat(bob_agent, endpoint=url, certificate_pem=public_crt.pem, certificate_sha256=public_crt.sha256)
    assert response.status_code == 200, response.content

    send(alice, alice_sender, receiver=bob_receiver)
    destination = claim(alice_agent).json()["payload"]["destination"]
    assert (destination["endpoint"], destination["bucket"], destination["tls"]) == (url, given.bucket, True)
    assert destination["certificate_sha256"] == public_crt.sha256
