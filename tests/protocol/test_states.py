"""The state machine the portal's queue applies (dtn_protocol.states)."""

from __future__ import annotations

import pytest

from dtn_protocol.states import (
    LEASED_STATES, REPORTED_STATES, TERMINAL_STATES, TRANSFER_STATE_OF, TRANSITIONS, CommandState, may_change,
)


def test_every_state_has_its_list_of_changes():
    assert set(TRANSITIONS) == set(CommandState)


@pytest.mark.parametrize("state", sorted(TERMINAL_STATES))
def test_a_finished_command_never_changes(state):
    assert [new for new in CommandState if may_change(state, new)] == []


@pytest.mark.parametrize("state", sorted(LEASED_STATES))
def test_a_leased_command_may_renew_its_lease_finish_or_go_back_to_the_queue(state):
    assert may_change(state, state)
    assert all(may_change(state, end) for end in TERMINAL_STATES)
    assert may_change(state, CommandState.QUEUED)


def test_a_queued_command_is_claimed_before_it_runs():
    assert may_change("queued", "claimed") and not may_change("queued", "running")
    assert not may_change("queued", "succeeded") and not may_change("queued", "queued")
    # Stopped before it started, or failed when its grant was revoked.
    assert may_change("queued", "canceled") and may_change("queued", "failed")


def test_a_running_command_does_not_go_back_to_claimed():
    assert not may_change("running", "claimed")


def test_an_agent_reports_every_state_but_queued():
    assert set(REPORTED_STATES) == set(CommandState) - {CommandState.QUEUED}


def test_every_command_state_names_a_transfer_state():
    assert set(TRANSFER_STATE_OF) == set(CommandState)
