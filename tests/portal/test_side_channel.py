"""Short tasks beside the queue: a person asks, the agent answers in seconds."""

from datetime import timedelta

import pytest
from django.utils import timezone

from portal.containers.models import AgentTask, TaskState

TASKS_NEXT = "/api/agent/v1/tasks/next?wait=0"


def ask(api, container, kind="list_send_folder", params=None):
    return api.post(f"/api/v1/containers/{container.pk}/tasks", {"kind": kind, "params": params or {}},
                    format="json")


def answer(agent, task_id, **body):
    return agent.post(f"/api/agent/v1/tasks/{task_id}", {"instance_id": "inst-1", **body}, format="json")


def test_a_person_asks_and_the_agent_picks_the_task_up_and_answers(alice_api, alice_sender, alice_agent):
    asked = ask(alice_api, alice_sender, params={"path": "data"})
    assert asked.status_code == 201
    task_id = asked.json()["task_id"]
    assert asked.json()["state"] == "pending"

    offered = alice_agent.post(TASKS_NEXT, {"instance_id": "inst-1"}, format="json")
    assert offered.status_code == 200
    assert offered.json()["tasks"] == [{"task_id": task_id, "kind": "list_send_folder", "params": {"path": "data"}}]

    listing = {"path": "data", "truncated": False, "entries": [{"name": "a.bin", "type": "file"}]}
    assert answer(alice_agent, task_id, ok=True, result=listing).status_code == 200
    seen = alice_api.get(f"/api/v1/tasks/{task_id}").json()
    assert seen["state"] == "answered" and seen["ok"] is True and seen["result"] == listing
    # Answered tasks are offered no more.
    assert alice_agent.post(TASKS_NEXT, {"instance_id": "inst-1"}, format="json").status_code == 204


def test_the_heartbeat_reply_offers_pending_tasks_too(alice_api, alice_sender, alice_agent):
    task_id = ask(alice_api, alice_sender).json()["task_id"]
    reply = alice_agent.post("/api/agent/v1/heartbeat", {}, format="json").json()
    assert [t["task_id"] for t in reply["tasks"]] == [task_id]


def test_a_refusal_carries_a_sentence_for_the_person(alice_api, alice_sender, alice_agent):
    task_id = ask(alice_api, alice_sender, params={"path": "../etc"}).json()["task_id"]
    assert answer(alice_agent, task_id, ok=False).status_code == 400
    assert answer(alice_agent, task_id, ok=False, error="'../etc' leaves the send folder").status_code == 200
    seen = alice_api.get(f"/api/v1/tasks/{task_id}").json()
    assert seen["ok"] is False and seen["error"] == "'../etc' leaves the send folder" and seen["result"] is None


def test_a_second_answer_is_refused_and_changes_nothing(alice_api, alice_sender, alice_agent):
    task_id = ask(alice_api, alice_sender).json()["task_id"]
    assert answer(alice_agent, task_id, ok=True, result={"entries": []}).status_code == 200
    again = answer(alice_agent, task_id, ok=True, result={"entries": ["other"]})
    assert again.status_code == 409 and "already answered" in again.json()["error"]
    assert AgentTask.objects.get(pk=task_id).result == {"entries": []}


def test_another_containers_task_cannot_be_answered(alice_api, alice_sender, charlie_agent):
    task_id = ask(alice_api, alice_sender).json()["task_id"]
    assert answer(charlie_agent, task_id, ok=True, result={}).status_code == 404
    assert AgentTask.objects.get(pk=task_id).state == TaskState.PENDING


def test_an_unknown_kind_or_the_wrong_role_is_refused_with_a_field(alice_api, alice_sender, bob_api, bob_receiver):
    unknown = ask(alice_api, alice_sender, kind="format_disk")
    assert unknown.status_code == 400 and unknown.json()["field"] == "kind"
    wrong_role = ask(bob_api, bob_receiver, kind="list_send_folder")
    assert wrong_role.status_code == 400 and "receiver container" in wrong_role.json()["error"]
    assert AgentTask.objects.count() == 0


def test_an_expired_task_is_not_offered(alice_api, alice_sender, alice_agent):
    task_id = ask(alice_api, alice_sender).json()["task_id"]
    AgentTask.objects.filter(pk=task_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert alice_agent.post(TASKS_NEXT, {"instance_id": "inst-1"}, format="json").status_code == 204
    assert alice_api.get(f"/api/v1/tasks/{task_id}").json()["state"] == "expired"


@pytest.mark.parametrize("body", [{}, {"instance_id": "bad id!"}])
def test_waiting_for_tasks_needs_a_valid_instance(alice_agent, body):
    response = alice_agent.post(TASKS_NEXT, body, format="json")
    assert response.status_code == 400 and response.json()["field"] == "instance_id"


def test_an_answer_after_the_deadline_is_refused(alice_api, alice_sender, alice_agent):
    task_id = ask(alice_api, alice_sender).json()["task_id"]
    AgentTask.objects.filter(pk=task_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    late = answer(alice_agent, task_id, ok=True, result={"entries": []})
    assert late.status_code == 409 and "expired" in late.json()["error"]
    assert AgentTask.objects.get(pk=task_id).result is None


CLAIM = "/api/agent/v1/commands/next?wait=0"


def test_an_idle_agents_claim_that_takes_tasks_brings_them_and_one_without_does_not(alice_api, alice_sender,
                                                                                   alice_agent):
    task_id = ask(alice_api, alice_sender).json()["task_id"]
    assert alice_agent.post(CLAIM, {"instance_id": "inst-1"}, format="json").status_code == 204
    taken = alice_agent.post(CLAIM, {"instance_id": "inst-1", "tasks": True}, format="json")
    assert taken.status_code == 200
    assert [t["task_id"] for t in taken.json()["tasks"]] == [task_id]
    assert answer(alice_agent, task_id, ok=True, result={"entries": []}).status_code == 200
    assert alice_agent.post(CLAIM, {"instance_id": "inst-1", "tasks": True}, format="json").status_code == 204


def test_granting_and_revoking_ask_the_receiver_to_sync_its_grants_once(alice, bob_api, bob_receiver):
    from portal.grants.models import Grant
    from tests.portal.conftest import agent_client

    bob_agent = agent_client(bob_receiver)

    def syncs():
        return list(AgentTask.objects.filter(container=bob_receiver, kind="sync_grants", state=TaskState.PENDING))

    made = bob_api.post("/api/v1/grants", {"receiver": str(bob_receiver.pk), "grantee": alice.username},
                        format="json")
    assert made.status_code == 201, made.json()
    assert len(syncs()) == 1
    offered = bob_agent.post(TASKS_NEXT, {"instance_id": "bob-1"}, format="json").json()["tasks"]
    assert [t["kind"] for t in offered] == ["sync_grants"]
    # Still pending: revoking adds no second ask, the one there fetches whatever the grants are by then.
    grant = Grant.objects.get(pk=made.json()["grant_id"])
    assert bob_api.post(f"/api/v1/grants/{grant.pk}/revoke").status_code == 200
    assert len(syncs()) == 1
    assert answer(bob_agent, syncs()[0].pk, ok=True, result={"endpoints_changed": True}).status_code == 200
    # Revoking twice changes nothing and asks nothing.
    assert bob_api.post(f"/api/v1/grants/{grant.pk}/revoke").status_code == 200
    assert syncs() == []


def test_a_task_handed_over_is_not_handed_again_while_the_agent_works_on_it(alice_api, alice_sender, alice_agent):
    from portal.containers.tasks import REOFFER_AFTER

    task_id = ask(alice_api, alice_sender).json()["task_id"]
    first = alice_agent.post(TASKS_NEXT, {"instance_id": "inst-1"}, format="json")
    assert [t["task_id"] for t in first.json()["tasks"]] == [task_id]
    # Asked again at once (the next long-poll, a heartbeat): nothing new, so a long-poll is held, not answered.
    assert alice_agent.post(TASKS_NEXT, {"instance_id": "inst-1"}, format="json").status_code == 204
    assert alice_agent.post("/api/agent/v1/heartbeat", {}, format="json").json()["tasks"] == []
    # Unanswered long after: handed over again, in case the agent lost it.
    AgentTask.objects.filter(pk=task_id).update(offered_at=timezone.now() - REOFFER_AFTER - timedelta(seconds=1))
    again = alice_agent.post(TASKS_NEXT, {"instance_id": "inst-1"}, format="json")
    assert [t["task_id"] for t in again.json()["tasks"]] == [task_id]
