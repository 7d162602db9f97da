from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from portal.lib.embedded import Embedded
from portal.transfers import validation
from portal.transfers import throughput
from portal.transfers.choices import DestinationKind, NetworkCheckMode, Overwrite
from portal.transfers.models import Command, Transfer, TransferEvent, TransferFile
from portal.transfers.services import SendRequest


class CommandSerializer(serializers.ModelSerializer):
    command_id = serializers.UUIDField(source="id", read_only=True)
    container_id = serializers.UUIDField(read_only=True)
    transfer_id = serializers.UUIDField(read_only=True, allow_null=True)

    class Meta:
        model = Command
        fields = (
            "command_id", "container_id", "transfer_id", "kind", "state", "reason", "message", "attempt",
            "created_at", "claimed_at", "started_at", "finished_at", "cancel_requested", "progress",
            "last_report_at",
        )
        read_only_fields = fields


# --- Send ---------------------------------------------------------------------------------------


def _range_messages(message: str) -> dict:
    # The range is checked here too, so the schema states it and no number reaches a column it overflows; the
    # words stay those of transfers/validation.py, which the send page says.
    return {"min_value": message, "max_value": message}


def _tuning_field(name: str, help_text: str) -> serializers.IntegerField:
    low, high = validation.TUNING_BOUNDS[name]
    return serializers.IntegerField(required=False, allow_null=True, min_value=low, max_value=high,
                                    error_messages=_range_messages(validation.tuning_range_message(low, high)),
                                    help_text=help_text)


class SendSerializer(serializers.Serializer):
    """The API twin of the send page: the same field names, the same rules
    (portal.transfers.validation)."""

    sender = serializers.UUIDField(help_text="The container ID of one of your sender containers.")
    receiver = serializers.UUIDField(required=False, allow_null=True,
                                     help_text="The container ID of a receiver whose owner granted you. "
                                               "Or leave it out and give the s3_* fields.")
    s3_host = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    s3_port = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=65535,
                                       error_messages=_range_messages(validation.PORT_RANGE_MESSAGE))
    s3_tls = serializers.BooleanField(required=False, default=True)
    s3_bucket = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    s3_access_key = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    s3_secret_key = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                          write_only=True, style={"input_type": "password"})
    sources = serializers.ListField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False), allow_empty=True,
        help_text="Files or directories relative to the sender's send folder.")
    prefix = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False,
                                   help_text="Where under the bucket the files land.")
    verify_checksums = serializers.BooleanField(required=False, default=validation.DEFAULT_VERIFY_CHECKSUMS)
    overwrite = serializers.ChoiceField(choices=Overwrite.choices, required=False,
                                        default=validation.DEFAULT_OVERWRITE)
    bandwidth_limit = serializers.CharField(required=False, allow_blank=True, default="",
                                            help_text="Bytes per second, e.g. 50M; empty for no limit.")
    label = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)
    network_check = serializers.ChoiceField(choices=NetworkCheckMode.choices, required=False,
                                            default=NetworkCheckMode.ENFORCE,
                                            help_text="enforce: a no-go stops the transfer; override: it goes ahead"
                                                      " anyway; skip: no probe.")
    transfers = _tuning_field("transfers", "Files at once; leave out for the agent to choose.")
    upload_concurrency = _tuning_field("upload_concurrency",
                                       "Parts of a big file at once; leave out to let the agent choose.")
    chunk_size_mib = _tuning_field("chunk_size_mib", "Part size in MiB; leave out to let the agent choose.")

    def validate_sources(self, value):
        return validation.source_paths(value)

    def validate_prefix(self, value):
        return validation.destination_prefix(value)

    def validate_bandwidth_limit(self, value):
        return validation.bandwidth_limit(value)

    def validate_label(self, value):
        return validation.label(value)

    def validate(self, attrs):
        values = {name: attrs.get(name) for name in validation.S3_FIELDS}
        values["s3_tls"] = attrs.get("s3_tls", True)
        try:
            attrs["s3"] = validation.destination(attrs.get("receiver"), values)
            attrs["tuning"] = validation.tuning({name: attrs.get(name) for name in validation.TUNING_BOUNDS})
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from None
        return attrs

    def to_request(self) -> SendRequest:
        data = self.validated_data
        return SendRequest(
            sender_id=data["sender"], receiver_id=data.get("receiver"), s3=data["s3"], sources=data["sources"],
            prefix=data["prefix"], verify_checksums=data["verify_checksums"], overwrite=data["overwrite"],
            bandwidth_limit=data["bandwidth_limit"], label=data["label"], network_check=data["network_check"],
            tuning=data["tuning"])


# --- The transfer record ------------------------------------------------------------------------


class FatalErrorSerializer(serializers.Serializer):
    reason = serializers.CharField()
    message = serializers.CharField()


class TransferStatusSerializer(serializers.ModelSerializer):
    """What a page polls: one row (the transfer with its latest command)."""

    transfer_id = serializers.UUIDField(source="id", read_only=True)
    files = serializers.SerializerMethodField()
    bytes = serializers.SerializerMethodField()
    effective_speed = serializers.FloatField(read_only=True, allow_null=True, help_text="Bytes/s over the run.")
    fatal_error = FatalErrorSerializer(read_only=True, allow_null=True)
    stop_requested = serializers.BooleanField(read_only=True)
    can_stop = serializers.BooleanField(read_only=True)
    can_restart = serializers.BooleanField(read_only=True)
    command_state = serializers.CharField(source="latest_command.state", read_only=True, allow_null=True,
                                          default=None)
    throughput = serializers.SerializerMethodField(
        help_text="{points: [[seconds since the start, bytes/s], ...]}, at most 600 points.")
    stalls = serializers.JSONField(read_only=True, help_text="[{start_s, end_s (null while it lasts), message}]")
    network_check = Embedded("netcheck.NetworkCheck", allow_null=True,
                             help_text="The check this attempt began with (null before it ran).")

    class Meta:
        model = Transfer
        fields = ("transfer_id", "state", "label", "files", "bytes", "speed", "effective_speed", "eta", "faults",
                  "fatal_error", "stop_requested", "can_stop", "can_restart", "attempts", "command_state",
                  "created_at", "started_at", "completed_at", "throughput", "stalls", "network_check")
        read_only_fields = fields

    def get_throughput(self, transfer) -> dict:
        return throughput.chart(transfer)

    def get_files(self, transfer) -> dict:
        return transfer.counts("files")

    def get_bytes(self, transfer) -> dict:
        return transfer.counts("bytes")


class TransferAttemptSerializer(serializers.ModelSerializer):
    command_id = serializers.UUIDField(source="id", read_only=True)
    files = serializers.SerializerMethodField(help_text="{done, total}: this attempt's own count.")
    bytes = serializers.SerializerMethodField(
        help_text="{done, total, resent}: what this attempt's rclone moved, each byte of the dataset once.")

    class Meta:
        model = Command
        fields = ("command_id", "state", "reason", "message", "attempt", "created_at", "started_at",
                  "finished_at", "cancel_requested", "files", "bytes")
        read_only_fields = fields

    def get_files(self, command) -> dict:
        return command.counts()["files"]

    def get_bytes(self, command) -> dict:
        return command.counts()["bytes"]


class TransferSerializer(TransferStatusSerializer):
    """The whole record, after Globus's task document (docs/transfer-record.md)."""

    source = serializers.SerializerMethodField()
    destination = serializers.SerializerMethodField()
    options = serializers.SerializerMethodField()
    commands = serializers.SerializerMethodField(help_text="Attempts still in the queue, oldest first.")

    class Meta(TransferStatusSerializer.Meta):
        fields = TransferStatusSerializer.Meta.fields + ("source", "destination", "options", "commands")
        read_only_fields = fields

    def get_source(self, transfer) -> dict:
        return {"container_id": transfer.sender_id, "container_name": transfer.sender.name,
                "paths": transfer.sources}

    def get_destination(self, transfer) -> dict:
        # Deliberately no keys: neither the grant's nor hand-entered ones.
        return {"kind": transfer.destination_kind,
                "container_id": transfer.receiver_id,
                "container_name": transfer.receiver_name or None,
                "owner": transfer.receiver_owner_name or None,
                "endpoint": transfer.endpoint or None,
                "tls": transfer.s3_tls if transfer.destination_kind == DestinationKind.S3 else None,
                "bucket": transfer.bucket, "prefix": transfer.prefix}

    def get_options(self, transfer) -> dict:
        return {"verify_checksums": transfer.verify_checksums, "overwrite": transfer.overwrite,
                "bandwidth_limit": transfer.bandwidth_limit, "network_check": transfer.network_check_mode,
                "tuning": transfer.tuning}

    def get_commands(self, transfer) -> list:
        return TransferAttemptSerializer(transfer.commands.order_by("created_at", "id"), many=True).data


class TransferEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = TransferEvent
        fields = ("at", "kind", "message", "source")
        read_only_fields = fields


class TransferFileSerializer(serializers.ModelSerializer):
    """One file's result: the manifest's columns (docs/transfer-record.md)."""

    class Meta:
        model = TransferFile
        fields = ("path", "size", "sha256", "receiver_sha256", "outcome", "error")
        read_only_fields = fields
