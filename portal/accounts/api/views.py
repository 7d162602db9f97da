from django.contrib.auth import authenticate
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, permissions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.accounts.api.serializers import (
    LoginTokenSerializer,
    MeSerializer,
    NewPersonalTokenSerializer,
    PersonalTokenSerializer,
    SignupSerializer,
)
from portal.accounts.models import PersonalToken
from portal.lib.errors import error_body
from portal.lib.schema import ErrorSerializer
from portal.lib.throttles import SignupThrottle, TokenThrottle
from portal.lib.views import NeverCached


class SignupView(generics.CreateAPIView):
    """Create an account. Sign-in for the API is by personal token (see /api/v1/auth/token)."""

    serializer_class = SignupSerializer
    permission_classes = [permissions.AllowAny]
    authentication_classes = []
    throttle_classes = [SignupThrottle]

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = serializer.save()
        return Response(MeSerializer(user).data, status=status.HTTP_201_CREATED)


class LoginTokenView(NeverCached, APIView):
    """Exchange a username and password for a new personal token (what `dtn login` does).

    Failures are throttled like the login page and never say whether the username exists."""

    permission_classes = [permissions.AllowAny]
    authentication_classes = []
    throttle_classes = [TokenThrottle]

    @extend_schema(request=LoginTokenSerializer, responses={
        201: NewPersonalTokenSerializer,
        401: OpenApiResponse(ErrorSerializer, description="Wrong username or password (the same answer for both)."),
        429: OpenApiResponse(ErrorSerializer, description="Too many requests or failed sign-ins from here, or for"
                                                          " this username (docs/configuration.md, Sign-in limits).")})
    def post(self, request):
        serializer = LoginTokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        user = authenticate(request._request, username=data["username"], password=data["password"])
        if user is None:
            return Response(error_body("wrong username or password"), status=status.HTTP_401_UNAUTHORIZED)
        token, raw = PersonalToken.issue(user, data["name"])
        token.token = raw
        return Response(NewPersonalTokenSerializer(token).data, status=status.HTTP_201_CREATED)


class MeView(generics.RetrieveAPIView):
    serializer_class = MeSerializer

    def get_object(self):
        return self.request.user


class TokenListView(NeverCached, generics.ListCreateAPIView):
    def get_serializer_class(self):
        return NewPersonalTokenSerializer if self.request.method == "POST" else PersonalTokenSerializer

    def get_queryset(self):
        return self.request.user.personal_tokens.all()

    def perform_create(self, serializer):
        token, raw = PersonalToken.issue(self.request.user, serializer.validated_data["name"])
        token.token = raw
        serializer.instance = token


class TokenDetailView(generics.RetrieveDestroyAPIView):
    serializer_class = PersonalTokenSerializer

    def get_object(self):
        return get_object_or_404(PersonalToken, pk=self.kwargs["token_id"], user=self.request.user)
