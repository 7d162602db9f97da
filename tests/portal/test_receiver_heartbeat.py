"""A receiver reports its certificate and where it serves each grant; senders get exactly that."""

import pytest

from agent.tls import ensure_certificate
from portal.containers.models import Container
from portal.grants.models import Grant
from tests.portal.conftest import agent_client, register
from tests.portal.sending import claim, grant, send


@pytest.fixture
def certificate(tmp_path):
    return ensure_certificate(tmp_path / "tls", ["bob-dtn.example.org"])


@pytest.fixture
def bob_agent(bob_receiver):
    return agent_client(bob_receiver)


def beat(agent, **body):
    return agent.post("/api/agent/v1/heartbeat", body, format="json")


def test_the_certificate_is_recorded_when_its_fingerprint_matches(bob_agent, bob_receiver, certificate):
    response = beat(bob_agent, endpoint="https://bob-dtn.example.org", certificate_pem=certificate.pem,
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
    ({"grants": [{"grant_id": "not-a-uuid", "endpoint": "https://x.example.org:9443"}]}, "grants"),
])
def test_malformed_receiver_reports_are_refused_with_the_field(bob_agent, body, field):
    response = beat(bob_agent, **body)
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_each_grants_endpoint_is_recorded_and_handed_to_the_sender(alice, alice_sender, alice_agent, bob_agent,
                                                                    bob_receiver, certificate):
    given = grant(bob_receiver, alice)
    beat(bob_agent, endpoint="https://bob-dtn.example.org", certificate_pem=certificate.pem,
         certificate_sha256=certificate.sha256,
         grants=[{"grant_id": str(given.pk), "endpoint": "https://bob-dtn.example.org:9444"}])
    given.refresh_from_db()
    assert given.endpoint == "https://bob-dtn.example.org:9444"

    send(alice, alice_sender, receiver=bob_receiver)
    destination = claim(alice_agent).json()["payload"]["destination"]
    assert destination["endpoint"] == "https://bob-dtn.example.org:9444"
    assert destination["tls"] is True
    assert destination["bucket"] == given.bucket
    assert destination["certificate_sha256"] == certificate.sha256
    assert destination["certificate_pem"] == certificate.pem


def test_a_receiver_cannot_set_the_endpoint_of_anothers_grant(alice, bob_agent, bob_receiver, charlie):
    dave_receiver = register(charlie, "charlie-rx", "receiver")
    theirs = Grant.issue(dave_receiver, alice)
    response = beat(bob_agent, grants=[{"grant_id": str(theirs.pk), "endpoint": "https://evil.example.org:1"}])
    assert response.status_code == 200
    theirs.refresh_from_db()
    assert theirs.endpoint == ""


def test_a_sender_containers_grant_report_is_ignored(alice, alice_sender, alice_agent, bob_receiver):
    given = grant(bob_receiver, alice)
    beat(alice_agent, grants=[{"grant_id": str(given.pk), "endpoint": "https://alice.example.org:1"}])
    given.refresh_from_db()
    assert given.endpoint == ""
    assert Container.objects.get(pk=alice_sender.pk).last_seen_at is not None


def test_only_the_pinned_certificate_is_stored_not_what_followed_it(bob_agent, bob_receiver, certificate, tmp_path):
    other = ensure_certificate(tmp_path / "other", ["elsewhere.example.org"])
    response = beat(bob_agent, certificate_pem=certificate.pem + other.pem, certificate_sha256=certificate.sha256)
    assert response.status_code == 200
    bob_receiver.refresh_from_db()
    assert bob_receiver.certificate_pem == certificate.pem


def test_a_receiver_serving_its_grants_from_minio_reports_one_endpoint_with_each_bucket(
        alice, alice_sender, alice_agent, bob_agent, bob_receiver, tmp_path):
    """The heartbeat of agent/minio_grants.py: every grant at MinIO's URL, with its bucket, and MinIO's
    own public.crt as the certificate to pin."""
    from agent.minio_grants import MinioGrants

    public_crt = ensure_certificate(tmp_path / "minio-certs", ["minio.bob.example.org"])
    given = grant(bob_receiver, alice)
    url = "https://minio.bob.example.org:9000"
    reported = {"grant_id": str(given.pk), "endpoint": url, "bucket": given.bucket}
    assert set(reported) == set(MinioGrants.reported)
    response = beat(bob_agent, endpoint=url, certificate_pem=public_crt.pem, certificate_sha256=public_crt.sha256,
                    grants=[reported])
    assert response.status_code == 200, response.content
    given.refresh_from_db()
    assert given.endpoint == url

    send(alice, alice_sender, receiver=bob_receiver)
    destination = claim(alice_agent).json()["payload"]["destination"]
    assert (destination["endpoint"], destination["bucket"], destination["tls"]) == (url, given.bucket, True)
    assert destination["certificate_sha256"] == public_crt.sha256
