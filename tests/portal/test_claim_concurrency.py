"""Claims racing on a real PostgreSQL server, each thread its own session.

The SQLite run deselects these (tests/run.py): its in-memory test database
cannot hold concurrent writers; the end-to-end server test races 200 claims on
the box's SQLite file instead."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection

from dtn_protocol.states import LEASED_STATES, CommandState
from portal.transfers import queue
from portal.transfers.models import Command

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def needs_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: run through `make test`, which starts one")


def run_threads(count, work):
    barrier = threading.Barrier(count)
    errors = []

    def body(index):
        try:
            barrier.wait()
            work(index)
        except Exception as exc:  # surfaced below, with the thread's index
            errors.append((index, exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors


def test_two_agents_racing_for_one_command_never_both_get_it(alice_sender, queued):
    for _ in range(15):
        command = queued()
        winners = []
        run_threads(2, lambda i: winners.append(queue.claim_next(alice_sender, f"instance-{i}")))
        claimed = [c for c in winners if c is not None]
        assert len(claimed) == 1
        queue.report(claimed[0], claimed[0].lease_holder, CommandState.SUCCEEDED)
        command.refresh_from_db()
        assert command.state == CommandState.SUCCEEDED


def test_many_agents_run_every_command_exactly_once_and_one_at_a_time(alice_sender, queued):
    commands = [queued() for _ in range(25)]
    runs = []
    overlaps = []

    def agent(index):
        instance = f"instance-{index}"
        idle = 0
        while idle < 50:
            command = queue.claim_next(alice_sender, instance)
            if command is None:
                idle += 1
                continue
            leased = Command.objects.filter(container=alice_sender, state__in=LEASED_STATES).count()
            if leased != 1:
                overlaps.append(leased)
            runs.append(command.pk)
            queue.report(command, instance, CommandState.RUNNING)
            queue.report(command, instance, CommandState.SUCCEEDED)

    run_threads(6, agent)
    assert overlaps == []
    assert Counter(runs) == Counter(c.pk for c in commands)
    assert set(Command.objects.values_list("state", flat=True)) == {CommandState.SUCCEEDED}


def test_claims_follow_queue_order_under_contention(alice_sender, queued):
    commands = [queued() for _ in range(10)]
    order = []
    lock = threading.Lock()

    def agent(index):
        for _ in range(40):
            with lock:  # claim and finish as one step, so order is observable
                command = queue.claim_next(alice_sender, f"instance-{index}")
                if command is not None:
                    order.append(command.pk)
                    queue.report(command, f"instance-{index}", CommandState.SUCCEEDED)

    run_threads(3, agent)
    assert order == [c.pk for c in commands]
