from rest_framework import serializers

from portal.notifications.models import Delivery
from portal.notifications.validation import WebhookRefused, check_webhook_url


class NotificationSettingsSerializer(serializers.Serializer):
    email_address = serializers.EmailField(source="user.email", required=False, allow_blank=True,
                                           help_text="Where mails go (the account's address); empty: no mail.")
    email_succeeded = serializers.BooleanField(required=False)
    email_failed = serializers.BooleanField(required=False)
    email_stall = serializers.BooleanField(required=False)
    webhook_url = serializers.CharField(required=False, allow_blank=True, max_length=2000,
                                        help_text="http(s) URL the portal POSTs signed JSON to; empty: no webhook.")
    webhook_succeeded = serializers.BooleanField(required=False)
    webhook_failed = serializers.BooleanField(required=False)
    webhook_stall = serializers.BooleanField(required=False)
    webhook_secret_set = serializers.BooleanField(source="has_webhook_secret", read_only=True)
    webhook_secret_created_at = serializers.DateTimeField(read_only=True, allow_null=True)
    webhook_secret = serializers.CharField(
        source="secret_shown_once", read_only=True, required=False,
        help_text="Only in the answer that made the secret (the first webhook URL); never again.")

    def validate_webhook_url(self, value):
        try:
            return check_webhook_url(value)
        except WebhookRefused as exc:
            raise serializers.ValidationError(str(exc)) from None

    def validated_changes(self) -> dict:
        data = dict(self.validated_data)
        user = data.pop("user", None)
        if user is not None and "email" in user:
            data["email_address"] = user["email"]
        return data


class WebhookSecretSerializer(serializers.Serializer):
    webhook_secret = serializers.CharField(read_only=True, help_text="Shown once. Store it now.")
    webhook_secret_created_at = serializers.DateTimeField(read_only=True)


class DeliverySerializer(serializers.ModelSerializer):
    delivery_id = serializers.UUIDField(source="id", read_only=True)
    transfer_id = serializers.SerializerMethodField()

    class Meta:
        model = Delivery
        fields = ("delivery_id", "transfer_id", "channel", "event", "status", "attempts", "last_error",
                  "created_at", "next_attempt_at", "finished_at")
        read_only_fields = fields

    def get_transfer_id(self, delivery) -> str | None:
        # From the payload: the record stays readable after the transfer is deleted.
        return delivery.payload.get("transfer_id")
