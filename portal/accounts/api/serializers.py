from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from portal.accounts.models import PersonalToken, User


class PersonalTokenSerializer(serializers.ModelSerializer):
    prefix = serializers.CharField(source="display_prefix", read_only=True)

    class Meta:
        model = PersonalToken
        fields = ("id", "name", "prefix", "created_at", "last_used_at")
        read_only_fields = ("id", "prefix", "created_at", "last_used_at")


class NewPersonalTokenSerializer(PersonalTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="Shown once. Store it now.")

    class Meta(PersonalTokenSerializer.Meta):
        fields = PersonalTokenSerializer.Meta.fields + ("token",)


class LoginTokenSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(write_only=True, style={"input_type": "password"})
    name = serializers.CharField(max_length=100, default="cli")


class SignupSerializer(serializers.ModelSerializer):
    password = serializers.CharField(write_only=True, style={"input_type": "password"})

    class Meta:
        model = User
        fields = ("id", "username", "email", "password")
        read_only_fields = ("id",)

    def validate(self, attrs):
        candidate = User(username=attrs["username"], email=attrs.get("email", ""))
        try:
            password_validation.validate_password(attrs["password"], candidate)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"password": list(exc.messages)}) from None
        return attrs

    def create(self, validated_data):
        return User.objects.create_user(**validated_data)


class MeSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ("id", "username", "email", "date_joined")
