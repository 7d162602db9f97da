from django.urls import path

from portal.grants import views

urlpatterns = [
    path("grants/", views.grants_page, name="grants"),
    path("grants/<uuid:grant_id>/certificate.pem", views.certificate_page, name="grant-certificate"),
    path("grants/<uuid:grant_id>/revoke", views.revoke_grant_page, name="grant-revoke"),
]
