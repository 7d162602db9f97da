"""Each app registers the side-channel kinds it asks, with what an answer does, at start-up
(AppConfig.ready): the task machinery in portal/containers/tasks.py knows none of them itself."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from portal.containers import tasks
from portal.containers.models import AgentTask


def test_a_person_may_ask_only_for_a_send_folder_listing():
    assert tasks.people_may_ask() == ["list_send_folder"]


def test_a_kind_nobody_registered_is_refused_with_the_kinds_a_person_may_ask(alice_sender, alice):
    with pytest.raises(tasks.TaskRefused) as refused:
        tasks.ask_for_person(alice_sender, "format_the_disk", {}, alice)
    assert refused.value.field == "kind" and "one of: list_send_folder" in refused.value.message


def test_an_answer_to_a_kind_without_a_handler_is_only_stored(alice_sender):
    task = tasks.ask(alice_sender, "sync_grants", {})
    tasks.answer(task, True, {"done": 1}, "")
    task.refresh_from_db()
    assert (task.state, task.ok, task.result) == ("answered", True, {"done": 1})


def test_a_registered_kind_is_handled_on_answer_and_on_offer(alice_sender, monkeypatch):
    seen = []
    monkeypatch.setitem(tasks._kinds, "echo", tasks.Kind(on_answer=seen.append,
                                                          on_offer=lambda task: {"expanded": True}))
    task = tasks.ask(alice_sender, "echo", {"stored": True})
    assert tasks.offer(task)["params"] == {"expanded": True}
    tasks.answer(task, True, {}, "")
    assert seen == [task]


def test_a_second_answer_is_refused_as_a_conflict(alice_sender):
    task = AgentTask.objects.create(container=alice_sender, kind="list_send_folder", params={},
                                    expires_at=timezone.now() + timedelta(minutes=1))
    tasks.answer(task, True, {}, "")
    with pytest.raises(tasks.AlreadyAnswered) as refused:
        tasks.answer(task, True, {}, "")
    assert refused.value.status == 409


def test_a_new_task_wakes_its_containers_waiting_poll_once_committed(alice_sender, django_capture_on_commit_callbacks,
                                                                    monkeypatch):
    from portal.agentapi import waiters

    woken = []
    monkeypatch.setattr(waiters.tasks, "wake_threadsafe", woken.append)
    with django_capture_on_commit_callbacks(execute=True):
        task = tasks.ask(alice_sender, "list_send_folder", {})
        assert woken == []
    assert woken == [alice_sender.pk]
    task.save()  # a change to a task is not new work
    assert woken == [alice_sender.pk]
