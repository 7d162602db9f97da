"""Stop, restart and delete, through the API and the transfer page.

Stop cancels a queued attempt at once and asks a running agent to stop on its
next report. Restart is a new command (attempt) on the same transfer; terminal
commands never change. Delete removes finished commands from the queue; the
transfer's record stays."""

from __future__ import annotations

import pytest

from portal.transfers import queue
from portal.transfers.models import Command, Transfer
from tests.portal.sending import HAND_S3, checked_in, grant, report, send

API = "/api/v1/transfers"


@pytest.fixture
def granted(alice, bob_receiver):
    checked_in(bob_receiver)
    return grant(bob_receiver, alice)


@pytest.fixture
def queued_transfer(alice, alice_sender, bob_receiver, granted):
    return send(alice, alice_sender, receiver=bob_receiver, sources=["data"])


def claimed(transfer, instance="inst-1"):
    command = queue.claim_next(transfer.sender, instance)
    assert command.transfer_id == transfer.pk
    return command


def failed(transfer, reason="receiver_unreachable"):
    command = claimed(transfer)
    queue.report(command, "inst-1", "running", progress={"bytes": 400, "total_bytes": 1000, "files": [
        {"path": "data/a", "size": 400, "sha256": "a" * 64, "outcome": "sent"}]})
    queue.report(command, "inst-1", "failed", reason=reason, message="no answer after retries")
    transfer.refresh_from_db()
    return command


def fresh(transfer):
    return Transfer.objects.select_related("latest_command").get(pk=transfer.pk)


# --- Stop -----------------------------------------------------------------------------------------


def test_stopping_a_queued_transfer_cancels_it_at_once(alice_api, queued_transfer):
    response = alice_api.post(f"{API}/{queued_transfer.pk}/stop")
    assert response.status_code == 200
    assert response.json()["state"] == "canceled"
    transfer = fresh(queued_transfer)
    assert (transfer.state, transfer.fatal_reason) == ("canceled", "canceled_by_user")
    assert transfer.latest_command.state == "canceled"
    assert transfer.events.filter(kind="canceled").exists()


def test_stopping_a_running_transfer_travels_back_on_the_agents_next_report(alice_api, alice_agent,
                                                                          queued_transfer):
    command = claimed(queued_transfer)
    response = alice_api.post(f"{API}/{queued_transfer.pk}/stop")
    assert response.status_code == 200
    body = response.json()
    assert (body["state"], body["stop_requested"]) == ("active", True)
    assert fresh(queued_transfer).events.filter(kind="stop_requested").exists()

    reply = report(alice_agent, command.pk, "running", progress={"bytes": 10})
    assert reply.json()["cancel_requested"] is True
    report(alice_agent, command.pk, "canceled", message="stopped by request")
    transfer = fresh(queued_transfer)
    assert (transfer.state, transfer.fatal_reason, transfer.stop_requested) == ("canceled", "canceled_by_user", False)


def test_a_finished_transfer_cannot_be_stopped(alice_api, queued_transfer):
    failed(queued_transfer)
    response = alice_api.post(f"{API}/{queued_transfer.pk}/stop")
    assert response.status_code == 409
    assert response.json()["error"] == "the transfer is already failed"
    assert fresh(queued_transfer).latest_command.state == "failed"


# --- Restart --------------------------------------------------------------------------------------


def test_restarting_a_failed_transfer_queues_a_new_attempt(alice_api, alice_sender, queued_transfer):
    first = failed(queued_transfer)
    response = alice_api.post(f"{API}/{queued_transfer.pk}/restart")
    assert response.status_code == 201
    body = response.json()
    assert (body["state"], body["attempts"], body["fatal_error"], body["completed_at"]) == ("queued", 2, None, None)
    assert [c["state"] for c in body["commands"]] == ["failed", "queued"]

    second = Command.objects.exclude(pk=first.pk).get()
    assert (second.container, second.transfer_id, second.state) == (alice_sender, queued_transfer.pk, "queued")
    assert second.payload == first.payload
    first_after = Command.objects.get(pk=first.pk)
    assert (first_after.state, first_after.reason) == ("failed", "receiver_unreachable")
    transfer = fresh(queued_transfer)
    assert transfer.latest_command_id == second.pk
    assert transfer.events.filter(kind="restart").exists()


def test_a_restart_keeps_what_earlier_attempts_did(alice_api, queued_transfer):
    failed(queued_transfer)
    alice_api.post(f"{API}/{queued_transfer.pk}/restart")
    command = claimed(queued_transfer, "inst-9")
    queue.report(command, "inst-9", "running", progress={"bytes": 600, "total_bytes": 1000, "files": [
        {"path": "data/a", "size": 400, "sha256": "a" * 64, "outcome": "skipped"},
        {"path": "data/b", "size": 600, "sha256": "b" * 64, "outcome": "sent"}]})
    queue.report(command, "inst-9", "succeeded")
    transfer = fresh(queued_transfer)
    assert transfer.state == "succeeded"
    assert transfer.bytes_transferred == 1000
    # data/a was sent by the first attempt; the restart found it there.
    assert {row.path: row.outcome for row in transfer.files.all()} == {"data/a": "sent", "data/b": "sent"}
    assert transfer.files_transferred == 2


def test_a_stopped_transfer_can_be_restarted(alice_api, queued_transfer):
    alice_api.post(f"{API}/{queued_transfer.pk}/stop")
    assert alice_api.post(f"{API}/{queued_transfer.pk}/restart").status_code == 201


def test_a_transfer_by_hand_can_be_restarted(alice_api, alice, alice_sender):
    transfer = send(alice, alice_sender, s3=HAND_S3)
    queue.request_stop(transfer.latest_command)
    assert alice_api.post(f"{API}/{transfer.pk}/restart").status_code == 201


@pytest.mark.parametrize("how", ["queued", "active", "succeeded"])
def test_only_a_failed_or_stopped_transfer_can_be_restarted(alice_api, queued_transfer, how):
    if how != "queued":
        command = claimed(queued_transfer)
        if how == "succeeded":
            queue.report(command, "inst-1", "succeeded")
    response = alice_api.post(f"{API}/{queued_transfer.pk}/restart")
    assert response.status_code == 409
    assert how in response.json()["error"]
    assert Command.objects.count() == 1


def test_a_revoked_grant_refuses_the_restart(alice_api, queued_transfer, granted):
    failed(queued_transfer)
    granted.revoke()
    response = alice_api.post(f"{API}/{queued_transfer.pk}/restart")
    assert response.status_code == 409
    assert response.json()["field"] == "receiver"
    assert "was revoked" in response.json()["error"]
    assert Command.objects.count() == 1


def test_a_restart_after_a_new_grant_uses_the_new_grant(alice_api, alice, bob_receiver, queued_transfer, granted):
    failed(queued_transfer)
    granted.revoke()
    renewed = grant(bob_receiver, alice)
    body = alice_api.post(f"{API}/{queued_transfer.pk}/restart").json()
    assert body["destination"]["bucket"] == renewed.bucket
    assert fresh(queued_transfer).grant == renewed


# --- Delete from the queue ---------------------------------------------------------------------------


def test_deleting_a_finished_command_keeps_the_transfers_record(alice_api, queued_transfer):
    command = failed(queued_transfer)
    assert alice_api.delete(f"/api/v1/commands/{command.pk}").status_code == 204
    assert not Command.objects.exists()
    body = alice_api.get(f"{API}/{queued_transfer.pk}").json()
    assert (body["state"], body["commands"], body["command_state"]) == ("failed", [], None)
    assert body["files"]["transferred"] == 1
    assert body["fatal_error"]["reason"] == "receiver_unreachable"
    assert fresh(queued_transfer).events.filter(kind="removed_from_queue").exists()
    # Removed from the queue, it can still be restarted.
    assert alice_api.post(f"{API}/{queued_transfer.pk}/restart").status_code == 201


def test_a_command_still_running_cannot_be_deleted(alice_api, queued_transfer):
    command = claimed(queued_transfer)
    assert alice_api.delete(f"/api/v1/commands/{command.pk}").status_code == 409
    assert Command.objects.filter(pk=command.pk).exists()


# --- Someone else's transfer ------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["stop", "restart"])
def test_bob_and_charlie_cannot_act_on_alices_transfer(bob_api, charlie_api, queued_transfer, action):
    for client in (bob_api, charlie_api):
        assert client.post(f"{API}/{queued_transfer.pk}/{action}").status_code == 404
    assert fresh(queued_transfer).state == "queued"


# --- The page's buttons -----------------------------------------------------------------------------


def page(client, transfer):
    return client.get(f"/portal/transfers/{transfer.pk}/").content.decode()


def press(client, transfer, action):
    return client.post(f"/portal/transfers/{transfer.pk}/{action}", {"csrfmiddlewaretoken": client.csrf()},
                       follow=True)


def test_a_queued_transfer_offers_stop_only(browser, alice, queued_transfer):
    html = page(browser(alice), queued_transfer)
    assert f'action="/portal/transfers/{queued_transfer.pk}/stop"' in html
    assert "/restart" not in html and "/delete" not in html


def test_a_failed_transfer_offers_restart_and_delete(browser, alice, queued_transfer):
    failed(queued_transfer)
    html = page(browser(alice), queued_transfer)
    assert "/stop" not in html
    assert f'action="/portal/transfers/{queued_transfer.pk}/restart"' in html
    assert f'action="/portal/transfers/{queued_transfer.pk}/delete"' in html


def test_the_stop_button_stops(browser, alice, queued_transfer):
    client = browser(alice)
    response = press(client, queued_transfer, "stop")
    assert response.status_code == 200
    assert "Stopped." in response.content.decode()
    assert fresh(queued_transfer).state == "canceled"


def test_the_stop_button_on_a_running_transfer_asks_the_agent(browser, alice, queued_transfer):
    claimed(queued_transfer)
    response = press(browser(alice), queued_transfer, "stop")
    html = response.content.decode()
    assert "Stop requested" in html
    assert '<span id="stop-requested">(stop requested)</span>' in html
    assert fresh(queued_transfer).latest_command.cancel_requested is True


def test_the_restart_button_restarts(browser, alice, queued_transfer):
    failed(queued_transfer)
    response = press(browser(alice), queued_transfer, "restart")
    assert "Restarted" in response.content.decode()
    transfer = fresh(queued_transfer)
    assert (transfer.state, transfer.attempts) == ("queued", 2)


def test_the_restart_button_explains_a_refusal(browser, alice, queued_transfer, granted):
    failed(queued_transfer)
    granted.revoke()
    response = press(browser(alice), queued_transfer, "restart")
    assert "Not restarted: Your grant to &#x27;bob-dtn&#x27; was revoked" in response.content.decode()
    assert Command.objects.count() == 1


def test_the_delete_button_removes_the_finished_commands_and_keeps_the_record(browser, alice, queued_transfer):
    failed(queued_transfer)
    response = press(browser(alice), queued_transfer, "delete")
    assert response.status_code == 200
    assert "Removed 1 finished command(s)" in response.content.decode()
    assert not Command.objects.exists()
    assert Transfer.objects.filter(pk=queued_transfer.pk).exists()


def test_the_delete_button_refuses_an_unfinished_transfer(browser, alice, queued_transfer):
    response = press(browser(alice), queued_transfer, "delete")
    assert "Not removed" in response.content.decode()
    assert Command.objects.count() == 1


@pytest.mark.parametrize("action", ["stop", "restart", "delete"])
def test_the_buttons_need_a_post_with_csrf(browser, alice, queued_transfer, action):
    client = browser(alice)
    assert client.get(f"/portal/transfers/{queued_transfer.pk}/{action}").status_code == 405
    assert client.post(f"/portal/transfers/{queued_transfer.pk}/{action}").status_code == 403
    assert (fresh(queued_transfer).state, Command.objects.count()) == ("queued", 1)


@pytest.mark.parametrize("action", ["stop", "restart", "delete"])
def test_the_buttons_do_nothing_for_someone_else(browser, bob, charlie, queued_transfer, action):
    for person in (bob, charlie):
        client = browser(person)
        response = client.post(f"/portal/transfers/{queued_transfer.pk}/{action}",
                               {"csrfmiddlewaretoken": client.csrf()})
        assert response.status_code == 404
    assert (fresh(queued_transfer).state, Command.objects.count()) == ("queued", 1)
