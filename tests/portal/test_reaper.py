"""The lease reaper (portal.transfers.reaper.reap_expired_leases): an expired
lease goes back to the queue with its attempt count, and fails with
lease_expired once DTN_MAX_ATTEMPTS is used. Times are explicit: expiry is set
on the row, not waited for."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from portal.transfers import queue, reaper
from portal.transfers.models import Command


def expire(command, ago=timedelta(seconds=10)):
    Command.objects.filter(pk=command.pk).update(lease_expires_at=timezone.now() - ago)
    command.refresh_from_db()
    return command


@pytest.fixture
def claimed(alice_sender, queued):
    command = queued()
    assert queue.claim_next(alice_sender, "inst-1").pk == command.pk
    command.refresh_from_db()
    return command


def test_it_requeues_an_expired_lease_and_keeps_the_attempt(claimed):
    expire(claimed)
    counts = reaper.reap_expired_leases()
    assert counts == {"requeued": 1, "failed": 0}
    claimed.refresh_from_db()
    assert claimed.state == "queued"
    assert claimed.attempt == 1
    assert claimed.lease_holder == ""
    assert claimed.lease_expires_at is None
    assert claimed.finished_at is None


def test_it_requeues_an_expired_running_command(claimed):
    queue.report(claimed, "inst-1", "running", progress={"bytes": 10})
    expire(claimed)
    assert reaper.reap_expired_leases() == {"requeued": 1, "failed": 0}
    claimed.refresh_from_db()
    assert claimed.state == "queued"
    assert claimed.attempt == 1


def test_a_requeued_command_is_claimed_again_with_the_next_attempt(alice_sender, claimed):
    expire(claimed)
    reaper.reap_expired_leases()
    again = queue.claim_next(alice_sender, "inst-2")
    assert again.pk == claimed.pk
    claimed.refresh_from_db()
    assert claimed.attempt == 2
    assert claimed.lease_holder == "inst-2"


def test_the_old_instance_is_refused_after_a_requeue(alice_agent, alice_sender, claimed):
    expire(claimed)
    reaper.reap_expired_leases()
    queue.claim_next(alice_sender, "inst-2")

    response = alice_agent.patch(f"/api/agent/v1/commands/{claimed.id}",
                                 {"instance_id": "inst-1", "state": "succeeded"}, format="json")
    assert response.status_code == 409
    claimed.refresh_from_db()
    assert claimed.state == "claimed"
    assert claimed.lease_holder == "inst-2"


def test_it_fails_the_command_after_the_last_attempt(settings, alice_sender, claimed):
    settings.DTN_MAX_ATTEMPTS = 2
    expire(claimed)
    assert reaper.reap_expired_leases() == {"requeued": 1, "failed": 0}
    queue.claim_next(alice_sender, "inst-1")
    claimed.refresh_from_db()
    assert claimed.attempt == 2

    expire(claimed)
    now = timezone.now()
    assert reaper.reap_expired_leases(now=now) == {"requeued": 0, "failed": 1}
    claimed.refresh_from_db()
    assert claimed.state == "failed"
    assert claimed.reason == "lease_expired"
    assert claimed.attempt == 2
    assert claimed.finished_at == now
    assert claimed.lease_expires_at is None
    assert "2 attempts" in claimed.message
    # A failed command is never claimed again.
    assert queue.claim_next(alice_sender, "inst-1") is None


def test_with_one_attempt_allowed_the_first_expiry_fails_it(settings, claimed):
    settings.DTN_MAX_ATTEMPTS = 1
    expire(claimed)
    assert reaper.reap_expired_leases() == {"requeued": 0, "failed": 1}
    claimed.refresh_from_db()
    assert claimed.state == "failed"
    assert claimed.reason == "lease_expired"


def test_a_live_lease_is_left_alone(claimed):
    before = (claimed.state, claimed.lease_holder, claimed.lease_expires_at)
    assert reaper.reap_expired_leases() == {"requeued": 0, "failed": 0}
    claimed.refresh_from_db()
    assert (claimed.state, claimed.lease_holder, claimed.lease_expires_at) == before


def test_it_uses_the_time_it_is_given(claimed):
    deadline = claimed.lease_expires_at
    assert reaper.reap_expired_leases(now=deadline - timedelta(seconds=1)) == {"requeued": 0, "failed": 0}
    assert reaper.reap_expired_leases(now=deadline + timedelta(seconds=1)) == {"requeued": 1, "failed": 0}
    claimed.refresh_from_db()
    assert claimed.state == "queued"


def test_a_report_that_renewed_the_lease_is_not_reaped(alice_agent, claimed):
    expire(claimed)
    response = alice_agent.patch(f"/api/agent/v1/commands/{claimed.id}",
                                 {"instance_id": "inst-1", "state": "running"}, format="json")
    assert response.status_code == 200

    assert reaper.reap_expired_leases() == {"requeued": 0, "failed": 0}
    claimed.refresh_from_db()
    assert claimed.state == "running"
    assert claimed.lease_holder == "inst-1"


def test_a_report_landing_between_the_reapers_read_and_its_update_wins(monkeypatch, claimed):
    """The reaper's update is conditional on the deadline it read: a report that
    renews the lease in between must not be undone."""
    expire(claimed)
    real_filter = Command.objects.filter
    listed = []

    class Rows:
        def __init__(self, rows):
            self.rows = rows

        def values_list(self, *fields):
            return self.rows

    def filter_then_report(*args, **kwargs):
        queryset = real_filter(*args, **kwargs)
        if listed:
            return queryset
        # The reaper's first query lists the expired leases; the agent reports just after.
        listed.append(list(queryset.values_list("pk", "attempt", "lease_expires_at")))
        queue.report(claimed, "inst-1", "running")
        return Rows(listed[0])

    monkeypatch.setattr(Command.objects, "filter", filter_then_report)
    counts = reaper.reap_expired_leases()
    monkeypatch.undo()

    assert [row[0] for row in listed[0]] == [claimed.pk]
    assert counts == {"requeued": 0, "failed": 0}
    claimed.refresh_from_db()
    assert claimed.state == "running"
    assert claimed.lease_holder == "inst-1"
    assert claimed.lease_expires_at > timezone.now()


def test_it_leaves_queued_and_finished_commands_alone(queued):
    waiting = queued()
    done = queued(state="succeeded")
    assert reaper.reap_expired_leases(now=timezone.now() + timedelta(days=1)) == {"requeued": 0, "failed": 0}
    waiting.refresh_from_db()
    done.refresh_from_db()
    assert (waiting.state, waiting.attempt) == ("queued", 0)
    assert done.state == "succeeded"


def test_it_reaps_each_containers_expired_leases(alice_sender, charlie_sender, queued):
    mine = queued()
    theirs = queued(container=charlie_sender)
    queue.claim_next(alice_sender, "a")
    queue.claim_next(charlie_sender, "c")
    expire(mine)
    assert reaper.reap_expired_leases() == {"requeued": 1, "failed": 0}
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.state == "queued"
    assert theirs.state == "claimed"


def test_the_management_command_reaps_once(capsys, claimed):
    expire(claimed)
    call_command("reap_leases", "--once")
    assert "requeued 1, failed 0" in capsys.readouterr().out
    claimed.refresh_from_db()
    assert claimed.state == "queued"
