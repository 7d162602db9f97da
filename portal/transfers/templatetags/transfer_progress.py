"""The progress block of a transfer, rendered on the server so a page is right
before its script polls; portal/static/portal/live.js keeps it current with the
same markup. The fraction is the CLI's (dtn_protocol.progress), so both agree."""

from django import template

from dtn_protocol.progress import fraction
from dtn_protocol.states import FINISHED_TRANSFER_STATES

register = template.Library()


def status_of(transfer) -> dict:
    """The parts of the status JSON the progress block reads, so the page's first render matches the poll's."""
    return {"state": transfer.state, "files": transfer.counts("files"), "bytes": transfer.counts("bytes")}


@register.inclusion_tag("transfers/_progress.html")
def transfer_progress(transfer, compact=False):
    status = status_of(transfer)
    done = fraction(status)
    return {
        "transfer": transfer,
        "percent": None if done is None else int(done * 100),
        "done_bytes": transfer.bytes_transferred + transfer.bytes_skipped,
        "done_files": transfer.files_transferred + transfer.files_skipped,
        "finished": transfer.state in FINISHED_TRANSFER_STATES,
        "compact": compact,
    }
