"""The token endpoint: username and password in, a DRF token out."""

from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.renderers import BrowsableAPIRenderer

from datalake.api.renderers import FastJSONRenderer


class TokenView(ObtainAuthToken):
    """`POST /api/v1/auth/token/`: exchange credentials for a token; bad ones are a 400."""

    renderer_classes = [FastJSONRenderer, BrowsableAPIRenderer]
    authentication_classes = ()

    @extend_schema(
        operation_id="auth_token_create",
        description=(
            "Exchange a username and password for an API token. Send it on every other "
            "call as `Authorization: Token <key>`. Bad credentials: 400."
        ),
        request=AuthTokenSerializer,
        responses={200: inline_serializer("TokenResponse", {"token": serializers.CharField()})},
        examples=[
            OpenApiExample(
                "Credentials", value={"username": "alice", "password": "s3cret"}, request_only=True
            ),
            OpenApiExample(
                "Token",
                value={"token": "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"},
                response_only=True,
            ),
        ],
        auth=[],
        tags=["auth"],
    )
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)
