"""A receiver's one address and its certificate, as people see them: on its page and in the API (the
owner), in the grants list and as a PEM file (the owner and the people it is granted to)."""

from django.test import Client

from portal.containers.models import Container
from tests.portal.sending import BOB_CERT_PEM, BOB_CERT_SHA256, BOB_ENDPOINT, checked_in, grant


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_owner_sees_the_address_with_its_port_and_the_fingerprint(bob, bob_api, bob_receiver):
    checked_in(bob_receiver)
    body = bob_api.get(f"/api/v1/containers/{bob_receiver.pk}").json()
    assert (body["endpoint"], body["certificate_sha256"]) == (BOB_ENDPOINT, BOB_CERT_SHA256)
    page = signed_in(bob).get(f"/portal/containers/{bob_receiver.pk}/").content.decode()
    assert BOB_ENDPOINT in page and BOB_CERT_SHA256 in page and "certificate.pem" in page


def test_the_certificate_downloads_as_a_pem_file_from_the_page_and_the_api(bob, bob_api, bob_receiver):
    checked_in(bob_receiver)
    for response in (bob_api.get(f"/api/v1/containers/{bob_receiver.pk}/certificate.pem"),
                     signed_in(bob).get(f"/portal/containers/{bob_receiver.pk}/certificate.pem")):
        assert response.status_code == 200
        assert response["Content-Type"] == "application/x-pem-file"
        assert response["Content-Disposition"] == 'attachment; filename="bob-dtn.pem"'
        assert response.content.decode() == BOB_CERT_PEM


def test_the_grantee_gets_the_receivers_certificate_through_the_grant_and_others_do_not(
        alice, alice_api, bob_receiver, charlie_api):
    checked_in(bob_receiver)
    given = grant(bob_receiver, alice)
    row = alice_api.get("/api/v1/grants").json()["received"][0]
    assert (row["endpoint"], row["certificate_sha256"]) == (BOB_ENDPOINT, BOB_CERT_SHA256)
    assert alice_api.get(f"/api/v1/grants/{given.pk}/certificate.pem").content.decode() == BOB_CERT_PEM
    assert signed_in(alice).get(f"/portal/grants/{given.pk}/certificate.pem").content.decode() == BOB_CERT_PEM
    # Not the receiver's owner's container page, and nothing for an outsider.
    assert alice_api.get(f"/api/v1/containers/{bob_receiver.pk}/certificate.pem").status_code == 404
    assert charlie_api.get(f"/api/v1/grants/{given.pk}/certificate.pem").status_code == 404


def test_no_certificate_yet_is_a_404_with_a_sentence(bob_api, bob_receiver):
    response = bob_api.get(f"/api/v1/containers/{bob_receiver.pk}/certificate.pem")
    assert response.status_code == 404
    assert "has not reported a certificate yet" in response.json()["error"]


def test_each_grant_says_whether_its_receiver_serves_it(alice, alice_api, bob_receiver):
    given = grant(bob_receiver, alice)
    assert alice_api.get("/api/v1/grants").json()["received"][0]["served"] is None
    Container.objects.filter(pk=bob_receiver.pk).update(health={"grants": {str(given.pk): "ok"}})
    assert alice_api.get("/api/v1/grants").json()["received"][0]["served"] == "ok"
    Container.objects.filter(pk=bob_receiver.pk).update(health={"grants": {str(given.pk): "its folder is gone"}})
    assert alice_api.get("/api/v1/grants").json()["received"][0]["served"] == "its folder is gone"
    Container.objects.filter(pk=bob_receiver.pk).update(health="not a dict")
    assert alice_api.get("/api/v1/grants").json()["received"][0]["served"] is None
