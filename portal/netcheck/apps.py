from django.apps import AppConfig


class NetcheckConfig(AppConfig):
    name = "portal.netcheck"
    label = "netcheck"
    verbose_name = "network checks"

    def ready(self):
        from dtn_protocol.tasks import TaskKind
        from portal.containers import tasks
        from portal.netcheck import services

        # The keys are added to the offer only, for the agent that runs the check, never stored in the task.
        tasks.register(TaskKind.NETWORK_CHECK, on_answer=services.on_answer, on_offer=services.offer_params)
