"""Serializers of the accounts API: credentials, tokens and grants (read and write apart)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from rest_framework import serializers

from accounts.models import ApiToken, Grant, Privilege
from datalake.api.strict import StrictSerializer
from datalake.models import Resource

PRIVILEGE_HELP = (
    "`read`: query the resource's data; `write`: re-push, ingest, create retail objects; "
    "`grant`: give and revoke privileges on it, see who accessed it."
)


class CredentialsSerializer(StrictSerializer):
    username = serializers.CharField(max_length=150, help_text="Your username.")
    password = serializers.CharField(
        max_length=256, style={"input_type": "password"}, help_text="Your password."
    )


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send as `Authorization: Token <token>`; shown once.")
    expires_at = serializers.DateTimeField(
        allow_null=True,
        help_text="When the token stops working (`API_TOKEN_TTL_DAYS` after it was issued); "
        "null: never.",
    )


class ApiTokenSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(
        slug_field="username", read_only=True, help_text="The owner's username."
    )

    class Meta:
        model = ApiToken
        fields = ["id", "user", "prefix", "created_at", "expires_at", "last_used_at"]
        read_only_fields = fields
        extra_kwargs = {
            "id": {"help_text": "The token's id, to revoke it (`DELETE .../tokens/{id}/`)."},
            "created_at": {"help_text": "When the token was issued."},
            "expires_at": {"help_text": "When it stops working; null: never."},
            "last_used_at": {
                "help_text": "When it last authenticated a request (to 5 minutes); null: never."
            },
        }


class GrantSerializer(serializers.ModelSerializer):
    """A grant as the API shows it."""

    user = serializers.SlugRelatedField(
        slug_field="username", read_only=True, help_text="The grantee's username (or null)."
    )
    group = serializers.SlugRelatedField(
        slug_field="name", read_only=True, help_text="The grantee group's name (or null)."
    )
    resource = serializers.SlugRelatedField(
        slug_field="name", read_only=True, help_text="The resource's name."
    )
    granted_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, help_text="Who gave it; null if unknown."
    )
    url = serializers.HyperlinkedIdentityField(
        view_name="grant-detail", help_text="This grant; `DELETE` it to revoke."
    )

    class Meta:
        model = Grant
        fields = [
            "id",
            "url",
            "user",
            "group",
            "resource",
            "privilege",
            "granted_by",
            "created_at",
            "expires_at",
            "columns",
            "row_filter",
            "masked",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "id": {"help_text": "The grant's id."},
            "privilege": {"help_text": PRIVILEGE_HELP},
            "created_at": {"help_text": "When it was given."},
        }


class GrantCreateSerializer(StrictSerializer):
    """`{"user" or "group", "resource", "privilege", "expires_at"?}`."""

    user = serializers.SlugRelatedField(
        slug_field="username",
        queryset=get_user_model().objects.all(),
        required=False,
        help_text="Username of the grantee (or give `group`).",
    )
    group = serializers.SlugRelatedField(
        slug_field="name",
        queryset=Group.objects.all(),
        required=False,
        help_text="Group name of the grantee (or give `user`).",
    )
    resource = serializers.SlugRelatedField(
        slug_field="name", queryset=Resource.objects.all(), help_text="Resource name."
    )
    privilege = serializers.ChoiceField(choices=Privilege.choices, help_text=PRIVILEGE_HELP)
    expires_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="ISO 8601 with a time zone; in the future."
    )
    columns = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text="`read` only: the only columns the grantee sees (null or absent: all).",
    )
    row_filter = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text='`read` only: allowed values per column, e.g. {"country": ["FR", "BE"]}; '
        "rows outside are invisible everywhere, counts included.",
    )
    masked = serializers.JSONField(
        required=False,
        help_text="`read` only: columns shown as a stable pseudonym (a keyed hash).",
    )

    def validate(self, attrs):
        from django.core.exceptions import ValidationError as DjangoValidationError

        from accounts.access.restrictions import validate_restriction
        from accounts.models import Grant

        if bool(attrs.get("user")) == bool(attrs.get("group")):
            raise serializers.ValidationError("Give exactly one of `user` and `group`.")
        attrs.setdefault("masked", [])
        probe = Grant(
            resource=attrs["resource"],
            privilege=attrs["privilege"],
            columns=attrs.get("columns"),
            row_filter=attrs.get("row_filter"),
            masked=attrs["masked"],
        )
        try:
            validate_restriction(probe)
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.message_dict) from None
        return attrs

    def validate_expires_at(self, value):
        from django.utils import timezone

        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("Must be in the future.")
        return value
