from django.apps import AppConfig


class AgentApiConfig(AppConfig):
    name = "portal.agentapi"
    label = "agentapi"

    def ready(self):
        from portal.agentapi import signals  # noqa: F401  (connects the wake-ups on new work)
