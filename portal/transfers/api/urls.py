from django.urls import path

from portal.transfers.api import views

urlpatterns = [
    path("containers/<uuid:container_id>/commands", views.ContainerCommandsView.as_view(),
         name="api-container-commands"),
    path("commands/<uuid:command_id>", views.CommandView.as_view(), name="api-command"),
    path("commands/<uuid:command_id>/stop", views.StopCommandView.as_view(), name="api-command-stop"),
    path("transfers", views.TransferListView.as_view(), name="api-transfers"),
    path("transfers/<uuid:transfer_id>", views.TransferView.as_view(), name="api-transfer"),
    path("transfers/<uuid:transfer_id>/status", views.TransferStatusView.as_view(), name="api-transfer-status"),
    path("transfers/<uuid:transfer_id>/stop", views.StopTransferView.as_view(), name="api-transfer-stop"),
    path("transfers/<uuid:transfer_id>/restart", views.RestartTransferView.as_view(), name="api-transfer-restart"),
    path("transfers/<uuid:transfer_id>/events", views.TransferEventsView.as_view(), name="api-transfer-events"),
    path("transfers/<uuid:transfer_id>/files", views.TransferFilesView.as_view(), name="api-transfer-files"),
    path("transfers/<uuid:transfer_id>/manifest.json", views.ManifestJSONView.as_view(),
         name="api-transfer-manifest-json"),
    path("transfers/<uuid:transfer_id>/manifest.csv", views.ManifestCSVView.as_view(),
         name="api-transfer-manifest-csv"),
]
