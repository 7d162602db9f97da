"""A transfer's per-file results as a downloadable manifest, JSON and CSV:
path, size, sender SHA-256, receiver SHA-256, outcome, error."""

from __future__ import annotations

import csv
import io
import json

import pytest

from portal.transfers import queue
from tests.portal.sending import checked_in, grant, send

API = "/api/v1/transfers"
A, B = "a" * 64, "b" * 64
FILES = [
    {"path": "data/b.bin", "size": 20, "sha256": B, "receiver_sha256": B, "outcome": "skipped"},
    {"path": "data/a.bin", "size": 10, "sha256": A, "receiver_sha256": A, "outcome": "sent"},
    {"path": 'odd, "name"\nwith newline.txt', "size": 1, "sha256": A, "outcome": "failed",
     "error": "checksum mismatch"},
]


@pytest.fixture
def transfer(alice, alice_sender, bob_receiver):
    checked_in(bob_receiver)
    grant(bob_receiver, alice)
    transfer = send(alice, alice_sender, receiver=bob_receiver, label="manifest test")
    command = queue.claim_next(alice_sender, "inst-1")
    queue.report(command, "inst-1", "succeeded", progress={"bytes": 11, "total_bytes": 31, "files": FILES})
    return transfer


def body_of(response) -> bytes:
    return b"".join(response.streaming_content)


def test_the_json_manifest_holds_the_summary_and_every_file(alice_api, transfer):
    response = alice_api.get(f"{API}/{transfer.pk}/manifest.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == f'attachment; filename="transfer-{transfer.pk}-manifest.json"'
    document = json.loads(body_of(response))
    assert document["transfer_id"] == str(transfer.pk)
    assert document["state"] == "succeeded"
    assert document["label"] == "manifest test"
    assert document["files"] == {"total": 0, "transferred": 1, "verified": 2, "skipped": 1, "failed": 1}
    assert document["manifest"] == [
        {"path": "data/a.bin", "size": 10, "sha256": A, "receiver_sha256": A, "outcome": "sent", "error": ""},
        {"path": "data/b.bin", "size": 20, "sha256": B, "receiver_sha256": B, "outcome": "skipped", "error": ""},
        {"path": 'odd, "name"\nwith newline.txt', "size": 1, "sha256": A, "receiver_sha256": "",
         "outcome": "failed", "error": "checksum mismatch"},
    ]


def test_the_csv_manifest_has_a_header_and_a_line_per_file(alice_api, transfer):
    response = alice_api.get(f"{API}/{transfer.pk}/manifest.csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="transfer-{transfer.pk}-manifest.csv"'
    rows = list(csv.reader(io.StringIO(body_of(response).decode())))
    assert rows == [
        ["path", "size", "sha256", "receiver_sha256", "outcome", "error"],
        ["data/a.bin", "10", A, A, "sent", ""],
        ["data/b.bin", "20", B, B, "skipped", ""],
        ['odd, "name"\nwith newline.txt', "1", A, "", "failed", "checksum mismatch"],
    ]


def test_a_transfer_without_results_has_an_empty_manifest(alice_api, alice, alice_sender, bob_receiver):
    checked_in(bob_receiver)
    grant(bob_receiver, alice)
    transfer = send(alice, alice_sender, receiver=bob_receiver)
    assert json.loads(body_of(alice_api.get(f"{API}/{transfer.pk}/manifest.json")))["manifest"] == []
    assert body_of(alice_api.get(f"{API}/{transfer.pk}/manifest.csv")).decode().splitlines() == [
        "path,size,sha256,receiver_sha256,outcome,error"]


def test_the_manifest_survives_deleting_the_commands(alice_api, transfer):
    queue.delete_finished_of_transfer(transfer)
    assert len(json.loads(body_of(alice_api.get(f"{API}/{transfer.pk}/manifest.json")))["manifest"]) == 3


def test_the_page_can_download_the_manifest_with_its_session(client, alice, transfer):
    client.force_login(alice)
    response = client.get(f"{API}/{transfer.pk}/manifest.csv")
    assert response.status_code == 200
    assert b"data/a.bin" in body_of(response)


def test_only_the_owner_gets_the_manifest(anon_api, bob_api, charlie_api, transfer):
    for client, status in ((anon_api, 401), (bob_api, 404), (charlie_api, 404)):
        for kind in ("json", "csv"):
            response = client.get(f"{API}/{transfer.pk}/manifest.{kind}")
            assert response.status_code == status
            assert b"data/a.bin" not in response.content
