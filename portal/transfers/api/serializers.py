from rest_framework import serializers

from portal.transfers.models import Command


class CommandSerializer(serializers.ModelSerializer):
    command_id = serializers.UUIDField(source="id", read_only=True)
    container_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = Command
        fields = (
            "command_id", "container_id", "kind", "state", "reason", "message", "attempt", "created_at",
            "claimed_at", "started_at", "finished_at", "cancel_requested", "progress", "last_report_at",
        )
        read_only_fields = fields
