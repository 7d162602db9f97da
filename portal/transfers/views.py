from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from portal.lib.errors import Refused
from portal.transfers import queue, services
from portal.transfers.forms import SendForm
from portal.transfers.models import Transfer

PAGE_SIZE = 50
PAGE_FILES = 200


def _owned(request, transfer_id) -> Transfer:
    # Another person's transfer is a 404, as in the API.
    return get_object_or_404(Transfer.objects.select_related("sender", "receiver", "latest_command"),
                             pk=transfer_id, owner=request.user)


# The page's script fills a container's or a task's ID into URLs reversed with this one.
URL_PLACEHOLDER = "00000000-0000-0000-0000-000000000000"


# How the send page groups the form's fields; a field not named here joins "options".
S3_FIELDS = ("s3_host", "s3_port", "s3_tls", "s3_bucket", "s3_access_key", "s3_secret_key")
MAIN_FIELDS = ("sender", "receiver_choice", "receiver", "sources", "prefix", "label")
TUNING_FIELDS = ("transfers", "upload_concurrency", "chunk_size_mib")


def _field_groups(form) -> dict:
    groups = {"main": [], "s3": [], "options": [], "tuning": []}
    for field in form:
        name = field.name
        group = ("main" if name in MAIN_FIELDS else "s3" if name in S3_FIELDS
                 else "tuning" if name in TUNING_FIELDS else "options")
        groups[group].append(field)
    # A collapsed group opens when it holds an error or a value, so nothing typed is out of sight.
    for name in ("s3", "tuning"):
        groups[f"{name}_open"] = any(f.errors or (f.value() not in (None, "", False, True) and f.name != "s3_tls")
                                     for f in groups[name])
    return groups


@login_required
def send_page(request):
    form = SendForm(request.user, request.POST or None)
    form.fields["receiver"].widget.attrs["list"] = "granted-receivers"
    if request.method == "POST" and form.is_valid():
        try:
            transfer = services.send(request.user, form.to_request())
        except Refused as exc:
            form.add_error(exc.field, str(exc))
        else:
            # Stays true while the transfer runs (the page updates the state itself, not this line).
            messages.success(request, "Handed to your sender; the state below follows the transfer live.")
            return redirect("transfer", transfer_id=transfer.pk)
    return render(request, "transfers/send.html",
                  {"form": form, "grants": form.grants, "placeholder": URL_PLACEHOLDER,
                   # receiver ID -> grant ID, for the script that lists the grant's folder at the receiver
                   "grant_ids": {str(g.receiver_id): str(g.pk) for g in form.grants},
                   "groups": _field_groups(form)},
                  status=400 if form.errors else 200)


@login_required
def transfers_page(request):
    transfers = (services.owned_transfers(request.user)
                 .select_related("sender", "receiver", "latest_command"))
    page = Paginator(transfers, PAGE_SIZE).get_page(request.GET.get("page"))
    # The page's script polls the list API for the same rows.
    return render(request, "transfers/list.html", {"page": page, "offset": (page.number - 1) * PAGE_SIZE})


@login_required
def transfer_page(request, transfer_id):
    transfer = _owned(request, transfer_id)
    return render(request, "transfers/detail.html", {
        "transfer": transfer,
        "commands": transfer.commands.order_by("created_at", "id"),
        "events": transfer.events.order_by("-at", "-id")[:200],
        # The first reported: one range read of an index, however many files (sorting a million paths for
        # the first 200 is not).
        "files": transfer.files.order_by("id")[:PAGE_FILES],
    })


@login_required
@require_POST
def stop_transfer_page(request, transfer_id):
    transfer = _owned(request, transfer_id)
    try:
        command = queue.stop_transfer(transfer)
    except queue.IllegalTransition as exc:
        messages.error(request, f"Not stopped: {exc}.")
    else:
        messages.success(request, "Stopped." if command.is_terminal
                         else "Stop requested: the agent stops at its next report.")
    return redirect("transfer", transfer_id=transfer.pk)


@login_required
@require_POST
def restart_transfer_page(request, transfer_id):
    transfer = _owned(request, transfer_id)
    try:
        services.restart(transfer)
    except Refused as exc:
        messages.error(request, f"Not restarted: {exc}")
    else:
        messages.success(request, "Restarted: a new attempt copies only what is missing or different.")
    return redirect("transfer", transfer_id=transfer.pk)


@login_required
@require_POST
def delete_transfer_commands_page(request, transfer_id):
    transfer = _owned(request, transfer_id)
    try:
        removed = queue.delete_finished_of_transfer(transfer)
    except queue.IllegalTransition as exc:
        messages.error(request, f"Not removed: {exc}.")
    else:
        messages.success(request, f"Removed {removed} finished command(s) from the queue; "
                                  "the transfer's record stays.")
    return redirect("transfer", transfer_id=transfer.pk)
