from django.contrib import admin
from django.shortcuts import redirect
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from portal.containers.api.views import RegisterView
from portal.lib import views as lib_views

api_v1 = [
    path("", include("portal.accounts.api.urls")),
    path("", include("portal.containers.api.urls")),
    path("", include("portal.transfers.api.urls")),
    path("", include("portal.grants.api.urls")),
    path("", include("portal.netcheck.api.urls")),
    path("", include("portal.notifications.api.urls")),
]

urlpatterns = [
    path("", lambda request: redirect("containers" if request.user.is_authenticated else "login"), name="home"),
    path("healthz", lib_views.healthz, name="healthz"),
    path("", include("portal.metrics.api.urls")),
    path("register", RegisterView.as_view(), name="register"),
    path("accounts/", include("portal.accounts.urls")),
    path("portal/", include("portal.containers.urls")),
    path("portal/", include("portal.transfers.urls")),
    path("portal/", include("portal.grants.urls")),
    path("portal/", include("portal.notifications.urls")),
    path("api/v1/", include(api_v1)),
    path("api/agent/v1/", include("portal.agentapi.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("admin/", admin.site.urls),
]

handler400 = "portal.lib.views.bad_request"
handler403 = "portal.lib.views.permission_denied"
handler404 = "portal.lib.views.not_found"
handler500 = "portal.lib.views.server_error"
