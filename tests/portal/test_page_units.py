"""Sizes and speeds on the pages: the IEC form the CLI and the agent's logs use (dtn_protocol.units),
a number never parted from its unit at a line break."""

from __future__ import annotations

from django.template import Context, Template


def render(text: str, **context) -> str:
    return Template(text).render(Context(context))


def test_every_template_writes_sizes_in_iec_units_without_loading_anything():
    assert render("{{ n|bytes }}", n=1536) == "1.5\xa0KiB"
    assert render("{{ n|bytes }}", n=512) == "512\xa0B"


def test_a_speed_is_bytes_a_second_and_a_fraction_of_a_byte_is_dropped():
    assert render("{{ n|speed }}", n=50 * 2**20 + 0.4) == "50.0\xa0MiB/s"
    assert render("{{ n|speed }}", n=99.7) == "99\xa0B/s"


def test_an_unknown_size_is_a_dash():
    assert render("{{ n|bytes }}", n=None) == "-"


def test_a_duration_reads_as_the_pages_script_writes_it():
    # portal/static/portal/live.js, DTN.duration: the first render and the script's updates agree.
    assert [render("{{ s|duration }}", s=s) for s in (None, -1, 0, 5.4, 65, 3 * 3600 + 62)] == [
        "–", "–", "0 s", "5 s", "1 min 5 s", "3 h 1 min"]
