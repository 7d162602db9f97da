from django.urls import path

from portal.grants.api import listing, views

urlpatterns = [
    path("grants", views.GrantListView.as_view(), name="api-grants"),
    path("grants/<uuid:grant_id>", views.GrantView.as_view(), name="api-grant"),
    path("grants/<uuid:grant_id>/certificate.pem", views.GrantCertificateView.as_view(), name="api-grant-certificate"),
    path("grants/<uuid:grant_id>/revoke", views.RevokeGrantView.as_view(), name="api-grant-revoke"),
    path("grants/<uuid:grant_id>/listing", listing.GrantListingView.as_view(), name="api-grant-listing"),
    path("grants/<uuid:grant_id>/listing/<uuid:task_id>", listing.GrantListingTaskView.as_view(),
         name="api-grant-listing-task"),
]
