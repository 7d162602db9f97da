from rest_framework import serializers

from dtn_protocol import states
from dtn_protocol.endpoints import EndpointRefused
from dtn_protocol.endpoints import split as split_address
from dtn_protocol.states import CommandState, Verification
from portal.lib.certificates import fingerprint, first_certificate
from portal.transfers import progress as transfer_progress
from portal.transfers.choices import FailureReasons
from portal.transfers.models import Command

REPORTED_STATES = [state.value for state in states.REPORTED_STATES]

INSTANCE_ID_HELP = ("A stable ID of this agent process's identity (kept in its state dir), so a "
                    "restarted agent gets back the command it held.")


def address_syntax(value: str) -> None:
    """scheme://host:port and nothing more; which hosts and schemes are allowed is the view's (the
    rule needs the container's certificate and the portal's settings)."""
    if value:
        try:
            split_address(value)
        except EndpointRefused as exc:
            raise serializers.ValidationError(str(exc)) from None


class HeartbeatSerializer(serializers.Serializer):
    instance_id = serializers.CharField(max_length=64, required=False, help_text=INSTANCE_ID_HELP)
    agent_version = serializers.CharField(max_length=40, required=False, allow_blank=True)
    rclone_version = serializers.CharField(max_length=40, required=False, allow_blank=True)
    hostname = serializers.CharField(max_length=255, required=False, allow_blank=True)
    disk_free_bytes = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    endpoint = serializers.CharField(
        max_length=255, required=False, allow_blank=True, validators=[address_syntax],
        help_text="Receivers: the one address every grant is served at, https://host:port (checked against"
                  " dtn_protocol.endpoints: no loopback, link-local or portal address, no plain http, unless"
                  " the portal allows them).")
    health = serializers.JSONField(required=False)
    certificate_pem = serializers.CharField(max_length=20000, required=False, allow_blank=True, trim_whitespace=False,
                                            help_text="Receivers: the TLS certificate their S3 servers present.")
    certificate_sha256 = serializers.CharField(max_length=95, required=False, allow_blank=True,
                                               help_text="Its SHA-256 fingerprint (ab:cd:…), checked against the PEM.")

    def validate(self, attrs):
        pem, claimed = attrs.get("certificate_pem"), attrs.get("certificate_sha256")
        if bool(pem) != bool(claimed):
            raise serializers.ValidationError({"certificate_sha256": "send the certificate and its fingerprint together"})
        if pem:
            try:
                actual = fingerprint(pem)
            except ValueError:
                raise serializers.ValidationError({"certificate_pem": "not a PEM certificate"}) from None
            if actual != claimed.lower():
                raise serializers.ValidationError({"certificate_sha256": "does not match the certificate"})
            # Senders trust exactly what is stored: the one certificate the fingerprint names, not
            # whatever else the PEM text carried after it.
            attrs["certificate_pem"] = first_certificate(pem)
        return attrs


class HeartbeatReplySerializer(serializers.Serializer):
    server_time = serializers.DateTimeField()
    container_id = serializers.UUIDField()
    role = serializers.CharField()
    heartbeat_seconds = serializers.IntegerField()
    claim_hold_seconds = serializers.IntegerField()
    lease_seconds = serializers.IntegerField()
    failure_reasons = serializers.ListField(child=serializers.CharField())
    tasks = serializers.ListField(child=serializers.DictField(), help_text="Side-channel tasks not yet answered.")


class ClaimSerializer(serializers.Serializer):
    instance_id = serializers.RegexField(r"^[A-Za-z0-9_.:-]{1,64}$", help_text=INSTANCE_ID_HELP)
    tasks = serializers.BooleanField(
        default=False, help_text="Also hand over side-channel tasks: an idle agent's claim is then its only"
                                 " long-poll (answered 200 with the tasks as soon as one is asked).")


class AgentCommandSerializer(serializers.ModelSerializer):
    """A command as the agent holding its lease receives it. For a transfer, the
    view passes `destination` (endpoint and keys) in the context: it is added to
    this answer only, never stored in the command."""

    command_id = serializers.UUIDField(source="id", read_only=True)

    class Meta:
        model = Command
        fields = ("command_id", "kind", "payload", "state", "attempt", "created_at", "lease_expires_at",
                  "cancel_requested", "progress")
        read_only_fields = fields

    def to_representation(self, instance):
        data = super().to_representation(instance)
        destination = self.context.get("destination")
        if destination is not None:
            data["payload"] = {**data["payload"], "destination": destination}
        return data


class AgentGrantSerializer(serializers.Serializer):
    grant_id = serializers.UUIDField()
    grantee = serializers.CharField(help_text="Username of the person who may send into this bucket.")
    bucket = serializers.CharField()
    access_key = serializers.CharField()
    secret_key = serializers.CharField(help_text="For this receiver's S3 server only.")
    created_at = serializers.DateTimeField()


class AgentGrantListSerializer(serializers.Serializer):
    grants = AgentGrantSerializer(many=True)


class ReportSerializer(serializers.Serializer):
    instance_id = serializers.RegexField(r"^[A-Za-z0-9_.:-]{1,64}$", help_text=INSTANCE_ID_HELP)
    state = serializers.ChoiceField(choices=REPORTED_STATES)
    progress = serializers.JSONField(required=False)
    reason = serializers.ChoiceField(choices=FailureReasons.choices, required=False, allow_blank=True)
    message = serializers.CharField(max_length=4000, required=False, allow_blank=True)

    def validate_progress(self, value):
        # Checked here so a malformed report is a 400 naming the bad value, not a 500.
        try:
            transfer_progress.parse(value)
        except transfer_progress.ProgressError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value

    def validate(self, attrs):
        if attrs["state"] == CommandState.FAILED and not attrs.get("reason"):
            raise serializers.ValidationError({"reason": "a failed command needs a reason"})
        return attrs


class VerificationSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=[verdict.value for verdict in Verification])
    message = serializers.CharField(required=False)
    files = serializers.ListField(child=serializers.CharField(), required=False,
                                  help_text="Files whose SHA-256 at the receiver differs (at most 1,000).")


class ReportReplySerializer(serializers.Serializer):
    command_id = serializers.UUIDField()
    state = serializers.CharField()
    cancel_requested = serializers.BooleanField()
    lease_expires_at = serializers.DateTimeField(allow_null=True)
    verification = VerificationSerializer(required=False, help_text=(
        "Only while the report's progress.phase is 'verifying': the receiver's verdict on what landed."))


class AgentTaskSerializer(serializers.Serializer):
    task_id = serializers.UUIDField()
    kind = serializers.CharField()
    params = serializers.JSONField()


class TaskListSerializer(serializers.Serializer):
    tasks = AgentTaskSerializer(many=True)


class TaskWaitSerializer(serializers.Serializer):
    instance_id = serializers.RegexField(r"^[A-Za-z0-9_.:-]{1,64}$", help_text=INSTANCE_ID_HELP)


class TaskAnswerSerializer(serializers.Serializer):
    instance_id = serializers.RegexField(r"^[A-Za-z0-9_.:-]{1,64}$", help_text=INSTANCE_ID_HELP)
    ok = serializers.BooleanField()
    result = serializers.JSONField(required=False, allow_null=True)
    error = serializers.CharField(max_length=4000, required=False, allow_blank=True)

    def validate(self, attrs):
        if not attrs["ok"] and not attrs.get("error"):
            raise serializers.ValidationError({"error": "say why the task could not be done"})
        return attrs
