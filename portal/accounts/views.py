from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from portal.accounts.forms import SignupForm, TokenForm
from portal.accounts.guard import USERNAME_LOCKED_MESSAGE
from portal.accounts.models import PersonalToken

LOCKED_OUT_MESSAGE = "Too many failed sign-in attempts. Wait a few minutes and try again."


def locked_out(request, original_response=None, credentials=None, *args, **kwargs):
    """Axes calls this once the failure limit is reached, for pages and API alike
    (axes 8 passes the response it replaces, then the credentials); also for the per-username lock
    (accounts/guard.py), which says so on the request."""
    message = USERNAME_LOCKED_MESSAGE if getattr(request, "dtn_username_locked", False) else LOCKED_OUT_MESSAGE
    if request.path.startswith("/api/"):
        response = JsonResponse({"error": message, "field": None}, status=429)
        response["Retry-After"] = str(settings.DTN_LOGIN_COOLOFF_MINUTES * 60)
        return response
    # LoginView.authentication_form is None (the view falls back to form_class).
    form = AuthenticationForm(request)
    return render(request, "accounts/login.html", {"form": form, "locked_out": message}, status=429)


class PortalLoginView(LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True


def signup(request):
    if request.user.is_authenticated:
        return redirect("containers")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="portal.accounts.guard.GuardedModelBackend")
        messages.success(request, f"Welcome, {user.username}. Register a container to start.")
        return redirect("containers")
    return render(request, "accounts/signup.html", {"form": form}, status=400 if form.errors else 200)


@never_cache  # the answer may show a new token
@login_required
def tokens_page(request):
    form = TokenForm(request.POST or None)
    new_token = None
    if request.method == "POST" and form.is_valid():
        _, new_token = PersonalToken.issue(request.user, form.cleaned_data["name"])
    return render(
        request,
        "accounts/tokens.html",
        {"form": form, "tokens": request.user.personal_tokens.all(), "new_token": new_token},
        status=400 if form.errors else 200,
    )


@login_required
@require_POST
def revoke_token_page(request, token_id: int):
    token = get_object_or_404(PersonalToken, pk=token_id, user=request.user)
    token.delete()
    messages.success(request, f"Token '{token.name}' revoked.")
    return redirect("tokens")
