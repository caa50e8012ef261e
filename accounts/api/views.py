"""Accounts API: the token endpoint, token rotation and revocation, and grants."""

from __future__ import annotations

from django.contrib.auth import authenticate
from django_filters import rest_framework as df
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.models import ApiToken, Grant, Privilege
from accounts.selectors import grants_visible_to
from accounts.throttling import check_login_allowed, clear_login_failures, record_login_failure
from datalake.api.parsers import BoundedJSONParser
from lineage.audit import note_resource

from . import examples
from .serializers import (
    ApiTokenSerializer,
    CredentialsSerializer,
    GrantCreateSerializer,
    GrantSerializer,
    TokenResponseSerializer,
)


class TokenView(APIView):
    """`POST /api/v1/auth/token/`: credentials in, a new token out; bad ones are a 400."""

    authentication_classes = ()
    permission_classes = (AllowAny,)
    parser_classes = (BoundedJSONParser, FormParser, MultiPartParser)

    @extend_schema(
        operation_id="auth_token_create",
        description=(
            "Exchange a username and password for a new API token. Send it on every other "
            "call as `Authorization: Token <token>`. The token is shown once; only its hash "
            "is stored. Bad credentials: 400; repeated failures: 429."
        ),
        request=CredentialsSerializer,
        responses={200: TokenResponseSerializer},
        examples=examples.TOKEN,
        auth=[],
        tags=["auth"],
    )
    def post(self, request):
        credentials = CredentialsSerializer(data=request.data)
        credentials.is_valid(raise_exception=True)
        username = credentials.validated_data["username"]
        check_login_allowed(request, username)
        user = authenticate(
            request, username=username, password=credentials.validated_data["password"]
        )
        if user is None or not user.is_active:
            record_login_failure(request, username)
            raise ValidationError(
                {"non_field_errors": ["Unable to log in with these credentials."]}
            )
        clear_login_failures(request, username)
        token, key = services.token_issue(user=user)
        return Response({"token": key, "expires_at": token.expires_at})


@extend_schema_view(
    list=extend_schema(
        description="Your tokens (staff: everyone's), without their keys.",
        examples=examples.TOKEN_LIST,
        tags=["auth"],
    ),
    destroy=extend_schema(
        description="Revoke a token: your own, or anyone's if you are staff. 204.",
        tags=["auth"],
    ),
)
class ApiTokenViewSet(mixins.ListModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    serializer_class = ApiTokenSerializer

    queryset = ApiToken.objects.none()  # for the schema; the real one is per user

    def get_queryset(self):
        qs = ApiToken.objects.select_related("user")
        return qs if self.request.user.is_staff else qs.filter(user=self.request.user)

    @extend_schema(
        description="Rotate the token this request was made with: it stops working now and "
        "a new one is returned (shown once).",
        request=None,
        responses={200: TokenResponseSerializer},
        examples=examples.TOKEN,
        tags=["auth"],
    )
    @action(detail=False, methods=["post"])
    def rotate(self, request):
        if not isinstance(request.auth, ApiToken):
            raise PermissionDenied("Rotate works on the token you call with (`Authorization`).")
        token, key = services.token_rotate(token=request.auth)
        return Response({"token": key, "expires_at": token.expires_at})


class GrantFilter(df.FilterSet):
    resource = df.CharFilter(field_name="resource__name", help_text="Resource name.")
    user = df.CharFilter(field_name="user__username", help_text="Grantee username.")
    group = df.CharFilter(field_name="group__name", help_text="Grantee group name.")
    privilege = df.ChoiceFilter(choices=Privilege.choices, help_text="read, write or grant.")


@extend_schema_view(
    list=extend_schema(
        description="Grants visible to you: staff all; a `grant` holder those on its "
        "resources; others their own (directly or through a group).",
        examples=examples.GRANT_LIST,
        tags=["grants"],
    ),
    retrieve=extend_schema(
        description="One grant.", examples=[examples.GRANT_EXAMPLE], tags=["grants"]
    ),
    destroy=extend_schema(
        description="Revoke a grant (needs `grant` on its resource). 204; the privilege is "
        "gone from the very next request.",
        tags=["grants"],
    ),
)
class GrantViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = GrantSerializer
    filterset_class = GrantFilter

    queryset = Grant.objects.none()  # for the schema; the real one is per user

    def get_queryset(self):
        return grants_visible_to(self.request.user)

    @extend_schema(
        description="Give a privilege on a resource to a user or a group, optionally until "
        "`expires_at`. Needs `grant` on the resource (or staff). 201 with the grant; an "
        "identical live grant already there: 200 with it.",
        request=GrantCreateSerializer,
        responses={200: GrantSerializer, 201: GrantSerializer},
        examples=examples.GRANT_CREATE,
        tags=["grants"],
    )
    def create(self, request):
        data = GrantCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        note_resource(request, data.validated_data["resource"].name)
        grant, created = services.grant_give(by=request.user, **data.validated_data)
        body = GrantSerializer(grant, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    def perform_destroy(self, instance):
        note_resource(self.request, instance.resource.name)
        services.grant_revoke(by=self.request.user, grant=instance)
