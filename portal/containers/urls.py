from django.urls import path

from portal.containers import views

urlpatterns = [
    path("containers/", views.containers_page, name="containers"),
    path("containers/<uuid:container_id>/", views.container_page, name="container"),
    path("containers/<uuid:container_id>/certificate.pem", views.certificate_page, name="container-certificate"),
    path("containers/<uuid:container_id>/rotate-token", views.rotate_token_page, name="container-rotate"),
    path("containers/<uuid:container_id>/delete", views.delete_container_page, name="container-delete"),
]
