from django.urls import path

from portal.netcheck.api import views

urlpatterns = [
    path("network-checks", views.NetworkCheckListView.as_view(), name="api-network-checks"),
    path("network-checks/<uuid:check_id>", views.NetworkCheckView.as_view(), name="api-network-check"),
]
