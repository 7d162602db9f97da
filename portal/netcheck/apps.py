from django.apps import AppConfig


class NetcheckConfig(AppConfig):
    name = "portal.netcheck"
    label = "netcheck"
    verbose_name = "network checks"

    def ready(self):
        from dtn_protocol.tasks import TaskKind
        from portal.containers import tasks
        from portal.lib import embedded
        from portal.netcheck import receivers, services  # noqa: F401  (receivers: a check reported by a transfer)
        from portal.netcheck.api.serializers import NetworkCheckSerializer

        # The keys are added to the offer only, for the agent that runs the check, never stored in the task.
        tasks.register(TaskKind.NETWORK_CHECK, on_answer=services.on_answer, on_offer=services.offer_params)
        # A transfer's record shows the check it began with; the transfers may not import this app.
        embedded.lend("netcheck.NetworkCheck", NetworkCheckSerializer)
