from django.apps import AppConfig


class TransfersConfig(AppConfig):
    name = "portal.transfers"
    label = "transfers"

    def ready(self):
        from dtn_protocol.tasks import TaskKind
        from portal.containers import tasks
        from portal.transfers import receivers, verification  # noqa: F401  (receivers: a revoked grant)

        tasks.register(TaskKind.VERIFY_RECEIVED, on_answer=verification.record_receiver_answer)
