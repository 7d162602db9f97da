"""Sizes and speeds as people read them, the same on pages, in the CLI and in the agent's logs."""

from __future__ import annotations

import pytest

from dtn_protocol.units import human_bytes, human_speed


@pytest.mark.parametrize("value, text", [(None, "-"), (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"),
                                         (1536 * 2**20, "1.5 GiB"), (3 * 2**50, "3.0 PiB")])
def test_human_bytes(value, text):
    assert human_bytes(value) == text


def test_a_speed_is_bytes_a_second():
    assert human_speed(50 * 2**20) == "50.0 MiB/s"
    assert human_speed(None) == "-/s"
