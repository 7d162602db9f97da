from django.apps import AppConfig


class GrantsConfig(AppConfig):
    name = "portal.grants"
    label = "grants"

    def ready(self):
        from portal.grants import receivers  # noqa: F401  (a deleted receiver retires its grants)
