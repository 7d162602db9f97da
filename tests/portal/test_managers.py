"""Who may send from where to where, asked of the models' managers: the one place each rule is written."""

from __future__ import annotations

import pytest

from portal.containers.models import Container
from portal.grants.models import Grant, NotGranted
from tests.portal.conftest import register
from tests.portal.sending import checked_in, grant


def test_my_senders_and_receivers_are_mine_and_of_the_right_role(alice, bob, alice_sender, bob_receiver):
    both = register(alice, "alice-both", "both")
    receiver = register(alice, "alice-rx", "receiver")
    assert set(Container.objects.own_senders(alice)) == {alice_sender, both}
    assert set(Container.objects.own_receivers(alice)) == {both, receiver}
    assert not Container.objects.own_senders(bob).exists()


def test_a_revoked_grant_or_one_to_a_receiver_turned_sender_is_not_usable(alice, bob, bob_receiver):
    kept = grant(bob_receiver, alice)
    assert list(Grant.objects.usable_by(alice)) == [kept]
    kept.revoke()
    assert not Grant.objects.usable_by(alice).exists()
    again = grant(bob_receiver, alice)
    Container.objects.filter(pk=bob_receiver.pk).update(role="sender")
    assert again.is_active and not Grant.objects.usable_by(alice).exists()


def test_the_grant_to_send_through_needs_a_receiver_that_reported_where_it_serves(alice, bob, bob_receiver,
                                                                                  charlie_sender):
    given = grant(bob_receiver, alice)
    with pytest.raises(NotGranted, match="has not reported its S3 endpoint yet"):
        Grant.objects.grant_for(alice, bob_receiver.pk)
    checked_in(bob_receiver)
    assert Grant.objects.grant_for(alice, bob_receiver.pk) == given
    # Whatever the ID is, no grant reads the same: no probing for IDs.
    for receiver_id in (charlie_sender.pk, "00000000-0000-0000-0000-000000000000"):
        with pytest.raises(NotGranted, match="You have no grant") as refused:
            Grant.objects.grant_for(alice, receiver_id)
        assert (refused.value.field, refused.value.status) == ("receiver", 400)
