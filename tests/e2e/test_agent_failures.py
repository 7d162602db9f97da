"""Failures end with a reason from the closed list, and the queue goes on."""

from __future__ import annotations

import os

import pytest

from agent.tls import ensure_certificate
from tests.harness import sha256, write_random

pytestmark = pytest.mark.e2e

FINISHED = ("succeeded", "failed", "canceled")


def test_wrong_keys_fail_with_auth_failed_and_the_next_transfer_still_runs(site, alice):
    write_random(site.send_dir / "a.bin", 300_000)
    site.agent().start()
    refused = site.send(["a.bin"], prefix="wrong", secret_key="not-the-secret-key-at-all")
    accepted = site.send(["a.bin"], prefix="right")

    record = alice.wait_state(refused, FINISHED)
    assert record["state"] == "failed", record
    assert record["fatal_error"]["reason"] == "auth_failed"
    assert "refused the keys" in record["fatal_error"]["message"]
    assert not site.landed("wrong").exists()
    assert alice.wait_state(accepted, FINISHED)["state"] == "succeeded"
    assert sha256(site.landed("right/a.bin")) == sha256(site.send_dir / "a.bin")


def test_a_missing_source_and_one_escaping_the_send_folder_are_refused_by_name(site, alice):
    outside = site.scratch / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not for sending")
    os.symlink(outside, site.send_dir / "escape")
    write_random(site.send_dir / "ok.bin", 1000)
    site.agent().start()
    missing = site.send(["not-there.txt"])
    escaping = site.send(["escape/secret.txt"])
    fine = site.send(["ok.bin"])

    for transfer, reason, words in ((missing, "source_missing", "does not exist"),
                                    (escaping, "source_outside_root", "outside the send folder")):
        record = alice.wait_state(transfer, FINISHED)
        assert record["state"] == "failed" and record["fatal_error"]["reason"] == reason, record
        assert words in record["fatal_error"]["message"]
    assert alice.wait_state(fine, FINISHED)["state"] == "succeeded"
    assert not (site.landed() / "escape").exists()


def test_a_receiver_down_at_start_is_retried_then_failed_as_unreachable(site, alice):
    write_random(site.send_dir / "a.bin", 1000)
    site.s3.stop()
    site.agent(DTN_RECEIVER_ATTEMPTS="3", DTN_RECEIVER_RETRY_SECONDS="0.5").start()
    transfer = site.send(["a.bin"])

    record = alice.wait_state(transfer, FINISHED, timeout=60)
    assert record["state"] == "failed", record
    assert record["fatal_error"]["reason"] == "receiver_unreachable"
    message = record["fatal_error"]["message"]
    assert "after 3 attempts" in message and "connection refused" in message.lower(), message
    retries = [e for e in alice.events(transfer) if e["kind"] == "retry"]
    assert len(retries) == 2 and all(e["source"] == "agent" for e in retries)
    assert record["faults"] == 2


def test_a_tls_receiver_whose_certificate_nobody_pinned_is_refused_as_a_certificate_mismatch(site, alice):
    certificate = ensure_certificate(site.scratch / "tls", ["127.0.0.1"])
    tls = site.s3_server(cert=certificate.cert_path, key=certificate.key_path)
    tls.start()
    write_random(site.send_dir / "a.bin", 1000)
    site.agent().start()
    transfer = site.send(["a.bin"], s3=tls)

    record = alice.wait_state(transfer, FINISHED)
    assert record["state"] == "failed" and record["fatal_error"]["reason"] == "certificate_mismatch", record
    # Refused by the network check's own TLS client (trusting the system's CAs only), before rclone.
    assert "certificate verify failed" in record["fatal_error"]["message"]
