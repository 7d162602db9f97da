from django.apps import AppConfig


class ContainersConfig(AppConfig):
    name = "portal.containers"
    label = "containers"

    def ready(self):
        from dtn_protocol.tasks import TaskKind
        from portal.containers import tasks

        # The one kind a person asks directly; the rest are asked by the apps that register them.
        tasks.register(TaskKind.LIST_SEND_FOLDER, for_people="is_sender")
