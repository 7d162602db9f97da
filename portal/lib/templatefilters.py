"""Filters every template has without a {% load %} (settings.TEMPLATES' builtins): sizes and speeds
as dtn_protocol.units writes them for the CLI and the agent's logs too. portal/static/portal/live.js
writes the same in the browser, so a number a page's script updates does not change its form."""

from django import template

from dtn_protocol.units import human_bytes

register = template.Library()


def _kept_together(text: str) -> str:
    # A non-breaking space: a number and its unit never end up on two lines.
    return text.replace(" ", "\xa0")


@register.filter(name="bytes")
def bytes_filter(value) -> str:
    return _kept_together(human_bytes(value))


@register.filter
def speed(value) -> str:
    return _kept_together(human_bytes(value)) + "/s"


@register.filter
def duration(value) -> str:
    """Seconds as live.js's DTN.duration writes them ('1 h 2 min', '3 min 4 s', '5 s'), so an ETA reads the
    same before and after the page's script updates it."""
    if value is None or value < 0:
        return "–"
    seconds = round(value)
    hours, minutes, secs = seconds // 3600, (seconds % 3600) // 60, seconds % 60
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"
