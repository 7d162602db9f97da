from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "portal.notifications"
    label = "notifications"

    def ready(self):
        from portal.notifications import receivers  # noqa: F401  (listens to portal.transfers' transfer_event)
