"""What a send may ask for (dtn_protocol.options)."""

from __future__ import annotations

from dtn_protocol.options import TUNING_BOUNDS, limit_bytes_per_s

MiB = 1024 * 1024


def test_bandwidth_limits_read_like_rclone():
    assert limit_bytes_per_s("50M") == 50 * MiB and limit_bytes_per_s("1.5G") == 1.5 * 1024 * MiB
    assert limit_bytes_per_s("") is None and limit_bytes_per_s("fast") is None


def test_a_part_size_stays_within_what_s3_accepts():
    assert TUNING_BOUNDS["chunk_size"] == (5 * MiB, 5 * 1024 * MiB)
