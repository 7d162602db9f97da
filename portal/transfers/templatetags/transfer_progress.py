"""The progress block of a transfer, rendered on the server so a page is right
before its script polls; portal/static/portal/live.js keeps it current with the
same markup. The fraction is the CLI's (portal.cli.progress), so both agree."""

from django import template

from portal.cli.progress import FINISHED, fraction

register = template.Library()


def status_of(transfer) -> dict:
    return {
        "state": transfer.state,
        "files": {"total": transfer.files_total, "transferred": transfer.files_transferred,
                  "skipped": transfer.files_skipped, "failed": transfer.files_failed},
        "bytes": {"total": transfer.bytes_total, "transferred": transfer.bytes_transferred,
                  "skipped": transfer.bytes_skipped},
    }


@register.inclusion_tag("transfers/_progress.html")
def transfer_progress(transfer, compact=False):
    status = status_of(transfer)
    done = fraction(status)
    return {
        "transfer": transfer,
        "percent": None if done is None else int(done * 100),
        "done_bytes": transfer.bytes_transferred + transfer.bytes_skipped,
        "done_files": transfer.files_transferred + transfer.files_skipped,
        "finished": transfer.state in FINISHED,
        "compact": compact,
    }
