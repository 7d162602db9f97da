"""The send page names the receiver by name and owner, from the grants one holds (issue 25); an ID typed into the
field below it is still accepted, and the two may not disagree."""

from __future__ import annotations

import html

from portal.transfers.models import Transfer
from tests.portal.sending import checked_in, grant


def post(client, **fields):
    return client.post("/portal/send/", {"csrfmiddlewaretoken": client.csrf(), "sources": "data/run-17",
                                         "overwrite": "update_changed", **fields})


def test_the_page_offers_the_granted_receivers_by_name_and_owner(browser, alice, bob_receiver):
    grant(checked_in(bob_receiver), alice)
    page = html.unescape(browser(alice).get("/portal/send/").content.decode())
    assert f'<option value="{bob_receiver.pk}">bob-dtn (bob)</option>' in page


def test_alice_sends_to_the_receiver_chosen_by_name(browser, alice, alice_sender, bob_receiver):
    grant(checked_in(bob_receiver), alice)
    response = post(browser(alice), sender=alice_sender.pk, receiver_choice=bob_receiver.pk)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Transfer.objects.get().receiver_id == bob_receiver.pk


def test_a_typed_id_is_still_accepted(browser, alice, alice_sender, bob_receiver):
    grant(checked_in(bob_receiver), alice)
    assert post(browser(alice), sender=alice_sender.pk, receiver=bob_receiver.pk).status_code == 302


def test_a_choice_and_a_different_typed_id_are_refused_on_the_field(browser, alice, alice_sender, bob_receiver,
                                                                      charlie_sender):
    grant(checked_in(bob_receiver), alice)
    response = post(browser(alice), sender=alice_sender.pk, receiver_choice=bob_receiver.pk,
                    receiver=charlie_sender.pk)
    assert response.status_code == 400
    assert "not the receiver chosen above" in response.content.decode()
    assert not Transfer.objects.exists()


def test_a_receiver_not_granted_cannot_be_chosen(browser, alice, alice_sender, bob_receiver):
    checked_in(bob_receiver)
    response = post(browser(alice), sender=alice_sender.pk, receiver_choice=bob_receiver.pk)
    assert response.status_code == 400
    assert 'id="id_receiver_choice-error"' in response.content.decode()
