from rest_framework import serializers

from portal.containers.models import Container, Role
from portal.lib.parsers import BoundedJSONField

MAX_PARAMS_BYTES = 64 * 1024


class ContainerSerializer(serializers.ModelSerializer):
    container_id = serializers.UUIDField(source="id", read_only=True)
    online = serializers.BooleanField(read_only=True)
    tcp = serializers.SerializerMethodField(help_text=(
        "The TCP settings in effect where the agent runs, as it last reported: {congestion_control,"
        " buffer_limit_bytes, tuned: {congestion_control, tcp_rmem, tcp_wmem}}; null before its first report."))

    class Meta:
        model = Container
        fields = (
            "container_id", "name", "role", "created_at", "online", "last_seen_at", "agent_version",
            "rclone_version", "hostname", "disk_free_bytes", "endpoint", "certificate_sha256", "token_rotated_at", "tcp",
        )
        read_only_fields = fields


    def get_tcp(self, container) -> dict | None:
        return container.tcp


class RegisterSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, trim_whitespace=True)
    role = serializers.ChoiceField(choices=Role.choices)


class RegisteredSerializer(ContainerSerializer):
    agent_token = serializers.CharField(read_only=True, help_text="Shown once. Give it to the agent; store it nowhere else.")

    class Meta(ContainerSerializer.Meta):
        fields = ContainerSerializer.Meta.fields + ("agent_token",)
        read_only_fields = fields


class RotatedSerializer(serializers.Serializer):
    container_id = serializers.UUIDField()
    agent_token = serializers.CharField(help_text="Shown once. The previous token no longer works.")


class AskSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text="list_send_folder (a network check is asked at /api/v1/network-checks)")
    params = BoundedJSONField(max_bytes=MAX_PARAMS_BYTES, object_only=True, required=False, default=dict)


class TaskSerializer(serializers.Serializer):
    task_id = serializers.UUIDField(source="id")
    container_id = serializers.UUIDField()
    kind = serializers.CharField()
    params = serializers.JSONField()
    state = serializers.CharField(help_text="pending, answered or expired")
    ok = serializers.BooleanField(allow_null=True)
    result = serializers.JSONField(allow_null=True)
    error = serializers.CharField()
    created_at = serializers.DateTimeField()
    answered_at = serializers.DateTimeField(allow_null=True)
