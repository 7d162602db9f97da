from django.urls import path

from portal.agentapi.api import views

urlpatterns = [
    path("heartbeat", views.HeartbeatView.as_view(), name="agent-heartbeat"),
    path("commands/next", views.ClaimView.as_view(), name="agent-claim"),
    path("commands/<uuid:command_id>", views.ReportView.as_view(), name="agent-report"),
    path("grants", views.GrantsView.as_view(), name="agent-grants"),
    path("tasks/next", views.TaskWaitView.as_view(), name="agent-tasks-next"),
    path("tasks/<uuid:task_id>", views.TaskAnswerView.as_view(), name="agent-task-answer"),
]
