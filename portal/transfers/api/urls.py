from django.urls import path

from portal.transfers.api import views

urlpatterns = [
    path("containers/<uuid:container_id>/commands", views.ContainerCommandsView.as_view(),
         name="api-container-commands"),
    path("commands/<uuid:command_id>", views.CommandView.as_view(), name="api-command"),
    path("commands/<uuid:command_id>/stop", views.StopCommandView.as_view(), name="api-command-stop"),
]
