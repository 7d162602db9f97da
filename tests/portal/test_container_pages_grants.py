"""The containers pages show grants (the grants app lends them through its template tags): who may
send to my receivers, where I may send, and who may send to this one receiver."""

from __future__ import annotations

import re

from tests.portal.sending import grant


def table(html: str, table_id: str) -> str:
    return re.search(rf'<table id="{table_id}">(.*?)</table>', html, re.S).group(1)


def test_my_containers_page_lists_the_grants_i_gave_and_the_ones_i_hold(browser, alice, bob, charlie, bob_receiver,
                                                                       charlie_sender):
    to_alice = grant(bob_receiver, alice)
    grant(bob_receiver, charlie).revoke()
    html = browser(bob).get("/portal/containers/").content.decode()
    given = table(html, "grants-given")
    assert "alice" in given and to_alice.bucket in given and "active" in given
    assert "charlie" in given and "revoked" in given
    assert "Nobody has granted you a receiver yet." in table(html, "grants-received")

    held = table(browser(alice).get("/portal/containers/").content.decode(), "grants-received")
    assert "bob-dtn" in held and to_alice.bucket in held
    # Charlie gave nothing: Bob's grants are Bob's to see.
    assert "alice" not in table(browser(charlie).get("/portal/containers/").content.decode(), "grants-given")


def test_a_receivers_page_lists_only_its_own_grants(browser, alice, bob, bob_receiver):
    from tests.portal.conftest import register

    other = register(bob, "bob-other", "receiver")
    grant(other, alice)
    html = browser(bob).get(f"/portal/containers/{bob_receiver.pk}/").content.decode()
    assert "Nobody may send here yet." in table(html, "receiver-grants")
    grant(bob_receiver, alice)
    html = browser(bob).get(f"/portal/containers/{bob_receiver.pk}/").content.decode()
    assert "alice" in table(html, "receiver-grants")
