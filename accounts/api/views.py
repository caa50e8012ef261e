"""Accounts API: the token endpoint, token rotation and revocation, and grants."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_logged_in
from django_filters import rest_framework as df
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, Throttled, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.access import Access, data_path, serves_no_data
from accounts.api import examples
from accounts.api.serializers import (
    ApiTokenSerializer,
    CredentialsSerializer,
    GrantCreateSerializer,
    GrantSerializer,
    TokenResponseSerializer,
)
from accounts.models import ApiToken, Grant, Privilege
from accounts.throttling import LOCKED_OUT
from datalake.api.parsers import BoundedJSONParser


@serves_no_data("the token endpoint: credentials in, a token out")
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
            "is stored. Bad credentials: 400. The 5th failure (by default) of a username "
            "from one IP within 5 minutes (or the 30th of any usernames from one IP) locks "
            "it out: 429 with Retry-After, even for the right password; `/api-auth/login/` "
            "and `/admin/login/` count in the same throttle."
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
        # Django's request, not DRF's: the failed-login throttle (axes) marks it.
        django_request = request._request
        user = authenticate(django_request, **credentials.validated_data)
        if getattr(django_request, "axes_locked_out", False):
            raise Throttled(wait=settings.LOGIN_FAILURE_WINDOW, detail=LOCKED_OUT)
        if user is None or not user.is_active:
            raise ValidationError(
                {"non_field_errors": ["Unable to log in with these credentials."]}
            )
        # A login like the others: clears this username's failures from this IP.
        user_logged_in.send(sender=type(user), request=django_request, user=user)
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
@serves_no_data("the caller's own API tokens (staff: all), no lake data")
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


def refuse_without_grant(request) -> None:
    """403 unless the caller holds `grant` on the named resource (or is staff), decided
    from the raw body before anything is validated: a 400 "does not exist" for a user,
    group or resource would tell anyone which names exist."""
    body = request.data if isinstance(request.data, dict) else {}
    name = body.get("resource")
    name = name[:100] if isinstance(name, str) else ""
    message = "You need `grant` on the resource to give privileges on it."
    Access.of(request).require("grant", name, message)


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
@data_path("the grants on the resources the user holds `grant` on, and the user's own")
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
        return Grant.objects.readable_by(self.request.user)

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
        refuse_without_grant(request)  # before any name is looked up: no existence oracle
        data = GrantCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        grant, created = services.grant_give(
            by=request.user, access=Access.of(request), **data.validated_data
        )
        body = GrantSerializer(grant, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    def perform_destroy(self, instance):
        services.grant_revoke(by=self.request.user, grant=instance, access=Access.of(self.request))
