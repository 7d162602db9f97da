from django.urls import path

from portal.containers.api import views

urlpatterns = [
    path("containers", views.ContainerListView.as_view(), name="api-containers"),
    path("containers/<uuid:container_id>", views.ContainerDetailView.as_view(), name="api-container"),
    path("containers/<uuid:container_id>/certificate.pem", views.ContainerCertificateView.as_view(),
         name="api-container-certificate"),
    path("containers/<uuid:container_id>/rotate-token", views.RotateTokenView.as_view(), name="api-container-rotate"),
    path("containers/<uuid:container_id>/tasks", views.ContainerTasksView.as_view(), name="api-container-tasks"),
    path("tasks/<uuid:task_id>", views.TaskView.as_view(), name="api-task"),
]
