"""The send page's second pane (issue 25): what is already in a grant's folder at its receiver, asked through the
receiver's side channel for a person who may see the grant. The bucket is the grant's, never the asker's."""

from __future__ import annotations

from portal.grants.models import Grant
from tests.portal.conftest import agent_client

TASKS_NEXT = "/api/agent/v1/tasks/next?wait=0"


def test_the_grantee_lists_the_grants_folder_through_the_receiver(alice_api, bob_receiver, alice):
    grant = Grant.issue(bob_receiver, alice)
    asked = alice_api.post(f"/api/v1/grants/{grant.pk}/listing", {"path": "run-17", "bucket": "someone-else"},
                           format="json")
    assert asked.status_code == 201, asked.json()
    task_id = asked.json()["task_id"]
    receiver = agent_client(bob_receiver)
    offered = receiver.post(TASKS_NEXT, {"instance_id": "i"}, format="json").json()["tasks"]
    assert offered == [{"task_id": task_id, "kind": "list_received", "params": {"bucket": grant.bucket,
                                                                                "path": "run-17"}}]
    listing = {"path": "run-17", "truncated": False, "entries": [{"name": "a.bin", "type": "file", "size": 5}]}
    assert receiver.post(f"/api/agent/v1/tasks/{task_id}", {"instance_id": "i", "ok": True, "result": listing},
                         format="json").status_code == 200
    seen = alice_api.get(f"/api/v1/grants/{grant.pk}/listing/{task_id}").json()
    assert seen["state"] == "answered" and seen["result"] == listing


def test_someone_without_the_grant_cannot_list_it(charlie_api, bob_receiver, alice):
    grant = Grant.issue(bob_receiver, alice)
    assert charlie_api.post(f"/api/v1/grants/{grant.pk}/listing", {}, format="json").status_code == 404


def test_a_revoked_grant_is_not_listed(alice_api, bob_receiver, alice):
    grant = Grant.issue(bob_receiver, alice)
    grant.revoke()
    answer = alice_api.post(f"/api/v1/grants/{grant.pk}/listing", {}, format="json")
    assert answer.status_code == 400 and "revoked" in answer.json()["error"]


def test_the_grantee_cannot_read_other_tasks_of_the_receiver(alice_api, bob_api, bob_receiver, alice):
    grant = Grant.issue(bob_receiver, alice)
    theirs = bob_api.post(f"/api/v1/grants/{grant.pk}/listing", {}, format="json").json()["task_id"]
    assert alice_api.get(f"/api/v1/grants/{grant.pk}/listing/{theirs}").status_code == 404
