"""The transfers list and the transfer detail: the API (/api/v1/transfers, the
record, its events and the cheap status endpoint a page polls) and the pages."""

from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from portal.transfers import queue
from portal.transfers.models import Transfer
from tests.portal.sending import HAND_S3, HAND_SECRET, checked_in, grant, send

API = "/api/v1/transfers"
SHA = "d" * 64


@pytest.fixture
def granted(alice, bob_receiver):
    checked_in(bob_receiver)
    return grant(bob_receiver, alice)


@pytest.fixture
def to_bob(alice, alice_sender, bob_receiver, granted):
    return send(alice, alice_sender, receiver=bob_receiver, sources=["data/run-17"], label="run 17",
                prefix="from-alice")


def in_progress(transfer):
    command = queue.claim_next(transfer.sender, "inst-1")
    queue.report(command, "inst-1", "running", progress={
        "bytes": 2048, "total_bytes": 4096, "speed": 1024.0, "eta": 2, "files_total": 2, "retries": 1,
        "files": [{"path": "data/run-17/a.bin", "size": 2048, "sha256": SHA, "receiver_sha256": SHA,
                   "outcome": "sent"}],
        "events": [{"at": timezone.now().isoformat(), "kind": "network_check", "message": "go"}]})
    return command


# --- API ------------------------------------------------------------------------------------------


def test_the_list_holds_only_my_transfers_newest_first(alice_api, alice, alice_sender, to_bob, charlie,
                                                       charlie_sender):
    second = send(alice, alice_sender, s3=HAND_S3)
    send(charlie, charlie_sender, s3=HAND_S3)
    body = alice_api.get(API).json()
    assert body["count"] == 2
    assert [item["transfer_id"] for item in body["results"]] == [str(second.pk), str(to_bob.pk)]


def test_the_list_filters_by_state_and_pages(alice_api, alice, alice_sender, to_bob):
    queue.request_stop(to_bob.latest_command)
    send(alice, alice_sender, s3=HAND_S3)
    assert [i["transfer_id"] for i in alice_api.get(f"{API}?state=canceled").json()["results"]] == [str(to_bob.pk)]
    page = alice_api.get(f"{API}?limit=1").json()
    assert (page["count"], len(page["results"])) == (2, 1)
    assert page["next"] is not None
    bad = alice_api.get(f"{API}?state=lost")
    assert bad.status_code == 400 and bad.json()["field"] == "state"


def test_the_record_follows_the_transfer(alice_api, to_bob):
    in_progress(to_bob)
    body = alice_api.get(f"{API}/{to_bob.pk}").json()
    assert body["state"] == "active"
    assert body["files"] == {"total": 2, "transferred": 1, "verified": 1, "skipped": 0, "failed": 0}
    assert body["bytes"] == {"total": 4096, "transferred": 2048, "verified": 2048, "skipped": 0, "failed": 0,
                             "resent": 0}
    assert (body["speed"], body["eta"], body["faults"]) == (1024.0, 2, 1)
    assert body["effective_speed"] is not None
    assert body["started_at"] is not None and body["completed_at"] is None
    assert body["fatal_error"] is None
    assert [c["state"] for c in body["commands"]] == ["running"]


def test_the_events_are_listed_oldest_first(alice_api, to_bob):
    in_progress(to_bob)
    events = alice_api.get(f"{API}/{to_bob.pk}/events").json()["results"]
    assert [(e["kind"], e["source"]) for e in events] == [
        ("queued", "portal"), ("started", "portal"), ("network_check", "agent")]
    assert {"at", "kind", "message", "source"} == set(events[0])


def test_the_status_is_the_live_subset_of_the_record(alice_api, to_bob):
    in_progress(to_bob)
    status = alice_api.get(f"{API}/{to_bob.pk}/status").json()
    record = alice_api.get(f"{API}/{to_bob.pk}").json()
    assert set(status) < set(record)
    for key in status:
        if key != "effective_speed":  # it moves with the clock
            assert status[key] == record[key], key
    assert status["command_state"] == "running"
    assert status["can_stop"] is True and status["can_restart"] is False


def test_the_status_costs_at_most_two_queries(alice_api, to_bob, django_assert_max_num_queries):
    in_progress(to_bob)
    alice_api.get(f"{API}/{to_bob.pk}/status")  # the token's last_used is written at most once a minute
    with django_assert_max_num_queries(2):
        response = alice_api.get(f"{API}/{to_bob.pk}/status")
    assert response.status_code == 200


def test_the_status_costs_at_most_two_queries_with_a_session_too(client, alice, to_bob,
                                                                 django_assert_max_num_queries):
    client.force_login(alice)
    # A session costs its own row and the user's; the view itself one more.
    with django_assert_max_num_queries(3):
        assert client.get(f"{API}/{to_bob.pk}/status").status_code == 200


def test_someone_elses_transfer_is_not_found(bob_api, charlie_api, to_bob):
    for client in (bob_api, charlie_api):
        for suffix in ("", "/status", "/events", "/manifest.json", "/manifest.csv"):
            assert client.get(f"{API}/{to_bob.pk}{suffix}").status_code == 404, suffix
    assert bob_api.get(API).json()["count"] == 0


def test_an_unknown_transfer_is_not_found(alice_api, db):
    assert alice_api.get(f"{API}/{uuid.uuid4()}").status_code == 404


def test_the_transfers_api_needs_a_person(anon_api, to_bob):
    for suffix in ("", f"/{to_bob.pk}", f"/{to_bob.pk}/status", f"/{to_bob.pk}/events"):
        assert anon_api.get(f"{API}{suffix}").status_code == 401


# --- Pages ----------------------------------------------------------------------------------------


def test_the_list_page_shows_my_transfers(browser, alice, to_bob, charlie, charlie_sender):
    theirs = send(charlie, charlie_sender, s3=HAND_S3, label="charlies secret project")
    html = browser(alice).get("/portal/transfers/").content.decode()
    assert f'href="/portal/transfers/{to_bob.pk}/"' in html
    assert "run 17" in html and "queued" in html and "alice-dtn" in html and "bob-dtn" in html
    assert str(theirs.pk) not in html and "charlies secret project" not in html


def test_the_list_page_says_when_there_is_nothing(browser, alice):
    assert "No transfers yet" in browser(alice).get("/portal/transfers/").content.decode()


def test_the_detail_page_shows_the_record(browser, alice, to_bob, granted):
    in_progress(to_bob)
    html = browser(alice).get(f"/portal/transfers/{to_bob.pk}/").content.decode()
    for text in (str(to_bob.pk), "active", "data/run-17", "bob-dtn", granted.bucket, "from-alice",
                 "1 transferred, 1 verified, 0 skipped, 0 failed, of 2", "2.0\xa0KiB transferred",
                 "1 retries", "data/run-17/a.bin", "verified", "network_check", "go",
                 f"/api/v1/transfers/{to_bob.pk}/status", f"/api/v1/transfers/{to_bob.pk}/manifest.csv",
                 f"/api/v1/transfers/{to_bob.pk}/manifest.json"):
        assert text in html, text


def test_the_detail_page_shows_a_fatal_error(browser, alice, to_bob):
    command = queue.claim_next(to_bob.sender, "inst-1")
    queue.report(command, "inst-1", "failed", reason="checksum_mismatch", message="data/a.bin differs")
    html = browser(alice).get(f"/portal/transfers/{to_bob.pk}/").content.decode()
    assert 'id="fatal-error">checksum_mismatch: data/a.bin differs<' in html


def test_the_detail_page_of_a_hand_entered_endpoint_shows_no_keys(browser, alice, alice_sender):
    transfer = send(alice, alice_sender, s3=HAND_S3)
    html = browser(alice).get(f"/portal/transfers/{transfer.pk}/").content.decode()
    assert "http://s3.example.org:9000" in html
    assert HAND_SECRET not in html and HAND_S3["access_key"] not in html


def test_the_detail_page_polls_only_while_the_transfer_runs(browser, alice, to_bob):
    html = browser(alice).get(f"/portal/transfers/{to_bob.pk}/").content.decode()
    assert 'data-state="queued"' in html
    queue.request_stop(to_bob.latest_command)
    html = browser(alice).get(f"/portal/transfers/{to_bob.pk}/").content.decode()
    assert 'data-state="canceled"' in html


def test_the_pages_are_not_found_for_someone_else(browser, bob, charlie, to_bob):
    for person in (bob, charlie):
        assert browser(person).get(f"/portal/transfers/{to_bob.pk}/").status_code == 404


def test_the_pages_need_a_signed_in_person(client, to_bob):
    for path in ("/portal/transfers/", f"/portal/transfers/{to_bob.pk}/", "/portal/send/"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_navigation_links_to_send_transfers_and_grants(browser, alice):
    html = browser(alice).get("/portal/containers/").content.decode()
    for path in ("/portal/send/", "/portal/transfers/", "/portal/grants/"):
        assert f'href="{path}"' in html


def test_many_transfers_are_paged(browser, alice, alice_sender):
    for _ in range(51):
        Transfer.objects.create(owner=alice, sender=alice_sender, destination_kind="s3", bucket="b",
                                s3_host="h", s3_port=1)
    html = browser(alice).get("/portal/transfers/").content.decode()
    assert "Page 1 of 2" in html and "?page=2" in html
