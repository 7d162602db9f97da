from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from portal.containers.models import Container
from portal.grants import services
from portal.grants.api.views import visible_grant
from portal.grants.forms import GrantForm
from portal.lib.certificates import pem_download


@login_required
def certificate_page(request, grant_id):
    return pem_download(visible_grant(request, grant_id).receiver)


@login_required
def grants_page(request):
    form = GrantForm(request.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            grant = services.grant(request.user, form.cleaned_data["grantee"], form.cleaned_data["receiver"].pk)
        except services.GrantRefused as exc:
            form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        else:
            messages.success(request, f"{grant.grantee.username} may now send to {grant.receiver.name} "
                                      f"(bucket {grant.bucket}). The keys go to the agents, never to a person.")
            return redirect("grants")
    return render(request, "grants/list.html", {
        "form": form,
        "given": services.given(request.user),
        "received": services.received(request.user),
        "has_receivers": Container.objects.own_receivers(request.user).exists(),
    }, status=400 if form.errors else 200)


@login_required
@require_POST
def revoke_grant_page(request, grant_id):
    grant = services.given(request.user).filter(pk=grant_id).first()
    if grant is None:
        raise Http404
    if services.revoke(grant):
        messages.success(request, f"Revoked {grant.grantee.username}'s grant to {grant.receiver.name}; "
                                  "sends still queued under it have failed.")
    else:
        messages.info(request, "That grant was already revoked.")
    return redirect("grants")
