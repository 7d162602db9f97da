"""The pages' own 404 and 500 (issue 25): styled like the rest of the portal (they extend base.html and
link its stylesheet and favicon), while the API keeps answering JSON."""

from __future__ import annotations

from django.test import RequestFactory

from portal.lib import views


def test_an_unknown_page_is_the_portals_own_404(client, db):
    response = client.get("/portal/no-such-page")
    assert response.status_code == 404
    html = response.content.decode()
    assert "This page does not exist" in html
    assert "portal/portal.css" in html and "portal/favicon.svg" in html
    assert 'href="/accounts/login/"' in html  # signed out: the way back is signing in


def test_a_signed_in_person_gets_links_to_their_pages_on_a_404(browser, alice):
    response = browser(alice).get("/portal/transfers/00000000-0000-0000-0000-000000000000/")
    assert response.status_code == 404
    assert 'href="/portal/containers/"' in response.content.decode()


def test_the_500_page_is_styled_and_needs_no_request_or_database(db):
    response = views.server_error(RequestFactory().get("/portal/containers/"))
    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong on our side" in html and "portal/portal.css" in html


def test_api_errors_stay_json(db):
    response = views.server_error(RequestFactory().get("/api/v1/containers"))
    assert response.status_code == 500 and response["Content-Type"].startswith("application/json")


def test_every_page_links_the_favicon(client, db):
    assert "portal/favicon.svg" in client.get("/accounts/login/").content.decode()
