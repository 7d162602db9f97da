from rest_framework import serializers

from portal.grants.models import Grant


class GrantSerializer(serializers.ModelSerializer):
    """A grant as a person sees it: never its secret key, not even encrypted."""

    grant_id = serializers.UUIDField(source="id", read_only=True)
    receiver_id = serializers.UUIDField(read_only=True)
    receiver_name = serializers.CharField(source="receiver.name", read_only=True)
    receiver_owner = serializers.CharField(source="receiver.owner.username", read_only=True)
    grantee = serializers.CharField(source="grantee.username", read_only=True)
    active = serializers.BooleanField(source="is_active", read_only=True)
    receiver_online = serializers.BooleanField(source="receiver.online", read_only=True,
                                               help_text="The receiver's agent heartbeats: it can take files now.")
    endpoint = serializers.CharField(source="receiver.endpoint", read_only=True,
                                     help_text="The receiver's one address: every grant on it is served there.")
    served = serializers.SerializerMethodField(
        help_text="The receiver's last word on this grant: 'ok' when it serves it, or why not; null before it said.")
    certificate_sha256 = serializers.CharField(source="receiver.certificate_sha256", read_only=True,
                                               help_text="The receiver's certificate, as senders pin it"
                                                         " (the PEM: GET /api/v1/grants/{id}/certificate.pem).")

    class Meta:
        model = Grant
        fields = ("grant_id", "receiver_id", "receiver_name", "receiver_owner", "receiver_online", "grantee", "bucket",
                  "endpoint",
                  "certificate_sha256", "served", "active", "created_at", "revoked_at")
        read_only_fields = fields


    def get_served(self, grant) -> str | None:
        if not grant.is_active:
            return None
        health = grant.receiver.health if isinstance(grant.receiver.health, dict) else {}
        grants = health.get("grants") if isinstance(health.get("grants"), dict) else {}
        word = grants.get(str(grant.pk))
        return str(word)[:300] if word is not None else None


class GivenGrantSerializer(GrantSerializer):
    # The receiver's owner sees the access key, to match it in the S3 server's logs.
    class Meta(GrantSerializer.Meta):
        fields = GrantSerializer.Meta.fields + ("access_key",)
        read_only_fields = fields


class GrantListSerializer(serializers.Serializer):
    given = GivenGrantSerializer(many=True, help_text="Grants on your receivers, to others.")
    received = GrantSerializer(many=True, help_text="Grants others gave you: receivers you may send to.")


class NewGrantSerializer(serializers.Serializer):
    grantee = serializers.CharField(max_length=150, help_text="The username of the person who may send.")
    receiver = serializers.UUIDField(help_text="The container ID of one of your receiver containers.")
