from django.urls import path

from portal.notifications.api import views

urlpatterns = [
    path("notifications/settings", views.NotificationSettingsView.as_view(), name="api-notification-settings"),
    path("notifications/webhook-secret", views.WebhookSecretView.as_view(), name="api-notification-webhook-secret"),
    path("notifications/test", views.TestNotificationView.as_view(), name="api-notification-test"),
    path("notifications/deliveries", views.DeliveryListView.as_view(), name="api-notification-deliveries"),
]
