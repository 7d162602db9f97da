from rest_framework import serializers

from portal.netcheck.models import NetworkCheck

# The rest of the agent's report (agent/netcheck/), shown together as `details`.
DETAIL_KEYS = ("tls", "s3", "host", "bdp_bytes", "per_stream_ceiling_bytes_per_s", "lossy", "held_back",
               "free_bytes", "addresses", "seconds")


class NewCheckSerializer(serializers.Serializer):
    sender = serializers.UUIDField(help_text="One of your sender containers: it runs the check.")
    receiver = serializers.UUIDField(help_text="A receiver container whose owner granted you.")
    total_bytes = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=2**63 - 1,
                                           help_text="Predict the duration for this many bytes (optional).")
    files = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=2**63 - 1,
                                     help_text="... in this many files (optional; 1 by default).")


class NetworkCheckSerializer(serializers.ModelSerializer):
    check_id = serializers.UUIDField(source="id", read_only=True)
    sender = serializers.UUIDField(source="sender_id", read_only=True)
    receiver = serializers.UUIDField(source="receiver_id", read_only=True, allow_null=True)
    transfer_id = serializers.UUIDField(read_only=True, allow_null=True)
    verdict = serializers.CharField(read_only=True, allow_null=True, help_text="go, warn or no_go; null until done.")
    reasons = serializers.SerializerMethodField()
    advice = serializers.SerializerMethodField()
    rtt_ms = serializers.SerializerMethodField(help_text="{min, median, max, samples} of TCP connects.")
    probe = serializers.SerializerMethodField(help_text="{single_stream_bytes_per_s, parallel_bytes_per_s, "
                                                        "streams, bytes, seconds, retransmit_ratio}")
    tuning = serializers.SerializerMethodField()
    tcp_tuning = serializers.SerializerMethodField(help_text=(
        "The sender's TCP: {in_effect: {congestion_control, from, tcp_rmem_max, tcp_wmem_max}, applied: [sentence],"
        " advised: [sentence with the sysctl lines]}; applied is what the site already has."))
    details = serializers.SerializerMethodField(help_text="The rest of what the agent measured.")
    predicted_seconds = serializers.SerializerMethodField()
    predicted_bytes_per_s = serializers.SerializerMethodField()

    class Meta:
        model = NetworkCheck
        fields = ("check_id", "state", "verdict", "reason", "summary", "reasons", "advice", "rtt_ms", "probe",
                  "tuning", "tcp_tuning", "predicted_seconds", "predicted_bytes_per_s", "details", "sender", "receiver",
                  "transfer_id", "endpoint", "total_bytes", "files", "error", "created_at", "finished_at")
        read_only_fields = fields

    def to_representation(self, check):
        data = super().to_representation(check)
        data["verdict"] = check.verdict or None
        return data

    def _part(self, check, key, default=None):
        value = (check.result or {}).get(key)
        return default if value is None else value

    def get_reasons(self, check) -> list[dict]:
        return self._part(check, "reasons", [])

    def get_advice(self, check) -> list[str]:
        return self._part(check, "advice", [])

    def get_rtt_ms(self, check) -> dict | None:
        return self._part(check, "rtt_ms")

    def get_probe(self, check) -> dict | None:
        return self._part(check, "probe")

    def get_tuning(self, check) -> dict | None:
        return self._part(check, "tuning")

    def get_tcp_tuning(self, check) -> dict | None:
        return self._part(check, "tcp_tuning")

    def get_predicted_seconds(self, check) -> float | None:
        return self._part(check, "predicted_seconds")

    def get_predicted_bytes_per_s(self, check) -> float | None:
        return self._part(check, "predicted_bytes_per_s")

    def get_details(self, check) -> dict:
        result = check.result or {}
        return {key: result[key] for key in DETAIL_KEYS if key in result}
