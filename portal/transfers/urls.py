from django.urls import path

from portal.transfers import views

urlpatterns = [
    path("send/", views.send_page, name="send"),
    path("transfers/", views.transfers_page, name="transfers"),
    path("transfers/<uuid:transfer_id>/", views.transfer_page, name="transfer"),
    path("transfers/<uuid:transfer_id>/stop", views.stop_transfer_page, name="transfer-stop"),
    path("transfers/<uuid:transfer_id>/restart", views.restart_transfer_page, name="transfer-restart"),
    path("transfers/<uuid:transfer_id>/delete", views.delete_transfer_commands_page, name="transfer-delete"),
]
