from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from portal.notifications import outbox, services, worker
from portal.notifications.forms import NotificationSettingsForm
from portal.notifications.models import NotificationSettings

RECENT_DELIVERIES = 25


def _page(request, form, new_secret=None, status=200):
    prefs = NotificationSettings.of(request.user)
    deliveries = request.user.deliveries.select_related("transfer")[:RECENT_DELIVERIES]
    return render(request, "notifications/settings.html",
                  {"form": form, "prefs": prefs, "new_secret": new_secret, "deliveries": deliveries},
                  status=status)


def _form(user, data=None):
    return NotificationSettingsForm(data, instance=NotificationSettings.of(user),
                                    initial={"email_address": user.email})


@never_cache  # the answer may hold a new signing secret
@login_required
def settings_page(request):
    form = _form(request.user, request.POST or None)
    if request.method == "POST":
        if not form.is_valid():
            return _page(request, form, status=400)
        _, new_secret = services.update(request.user, form.cleaned_data)
        messages.success(request, "Notification settings saved.")
        if new_secret is None:
            return redirect("notifications")
        # Rendered, not redirected: the new secret must reach the page this once.
        return _page(request, _form(request.user), new_secret)
    return _page(request, form)


@never_cache
@login_required
@require_POST
def rotate_secret_page(request):
    _, secret = services.rotate_secret(request.user)
    messages.success(request, "A new signing secret is in use from now on; the old one no longer signs.")
    return _page(request, _form(request.user), secret)


@login_required
@require_POST
def test_page(request):
    deliveries = outbox.enqueue_test(request.user)
    if not deliveries:
        messages.error(request, "Nothing to test: set an email address or a webhook URL first.")
    else:
        worker.wake()
        channels = " and ".join(sorted(d.channel for d in deliveries))
        messages.success(request, f"Test notification queued ({channels}); its result appears below.")
    return redirect("notifications")
