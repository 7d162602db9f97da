"""How far a transfer is: the one fraction the pages and the CLI show."""

from __future__ import annotations

from dtn_protocol.progress import fraction


def test_the_fraction_is_by_bytes_counting_skipped_ones_as_done():
    status = {"state": "active", "files": {"total": 4, "transferred": 1, "skipped": 0},
              "bytes": {"total": 1000, "transferred": 250, "skipped": 250}}
    assert fraction(status) == 0.5


def test_without_a_size_yet_the_fraction_is_by_files():
    assert fraction({"state": "active", "files": {"total": 4, "transferred": 1, "skipped": 2},
                     "bytes": {"total": 0}}) == 0.75


def test_a_succeeded_transfer_is_done_whatever_its_counters_say():
    assert fraction({"state": "succeeded", "files": {}, "bytes": {}}) == 1.0
