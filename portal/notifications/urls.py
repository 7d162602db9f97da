from django.urls import path

from portal.notifications import views

urlpatterns = [
    path("notifications/", views.settings_page, name="notifications"),
    path("notifications/webhook-secret", views.rotate_secret_page, name="notifications-rotate-secret"),
    path("notifications/test", views.test_page, name="notifications-test"),
]
