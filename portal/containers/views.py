from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from portal.containers import services
from portal.containers.api.views import owned_container
from portal.containers.forms import RegisterForm
from portal.containers.onboarding import next_steps
from portal.lib.certificates import pem_download


@never_cache  # the answer may show a new agent token
@login_required
def containers_page(request):
    form = RegisterForm(request.POST or None)
    registered = None
    if request.method == "POST" and form.is_valid():
        try:
            container, token = services.register(request.user, **form.cleaned_data)
        except services.NameTaken as exc:
            form.add_error(exc.field, str(exc))
        else:
            registered = next_steps(request, container, token)
            form = RegisterForm()
    return render(
        request,
        "containers/list.html",
        {"form": form, "containers": request.user.containers.all(), "registered": registered},
        status=400 if form.errors else 200,
    )


def _detail(request, container, **extra):
    commands = container.commands.order_by("-created_at")[:50]
    return render(request, "containers/detail.html", {"container": container, "commands": commands, **extra})


@login_required
def container_page(request, container_id):
    return _detail(request, owned_container(request, container_id))


@login_required
def certificate_page(request, container_id):
    return pem_download(owned_container(request, container_id))


@never_cache
@login_required
@require_POST
def rotate_token_page(request, container_id):
    container = owned_container(request, container_id)
    return _detail(request, container, new_token=container.rotate_token())


@login_required
@require_POST
def delete_container_page(request, container_id):
    container = owned_container(request, container_id)
    container.delete()
    messages.success(request, f"Container '{container.name}' deleted; its token no longer works.")
    return redirect("containers")
