from dtn_protocol.states import CommandState


def test_an_agent_of_a_deactivated_person_is_refused(alice, alice_agent):
    assert alice_agent.post("/api/agent/v1/heartbeat", {}, format="json").status_code == 200
    alice.is_active = False
    alice.save()
    response = alice_agent.post("/api/agent/v1/heartbeat", {}, format="json")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid agent token"


def test_a_deactivated_persons_queue_is_not_claimed(alice, alice_agent, queued):
    command = queued()
    alice.is_active = False
    alice.save()
    response = alice_agent.post("/api/agent/v1/commands/next?wait=0", {"instance_id": "a"}, format="json")
    assert response.status_code == 401
    command.refresh_from_db()
    assert command.state == CommandState.QUEUED
