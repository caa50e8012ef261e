"""Serializers of the catalog (read only: resources are registered, not posted)."""

from rest_framework import serializers

from accounts.models import Privilege


class ColumnSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="Column name, as used in `fields`, filters, ordering.")
    type = serializers.ChoiceField(
        choices=["string", "integer", "decimal", "date", "timestamp", "boolean", "array"]
    )
    filters = serializers.ListField(
        child=serializers.ChoiceField(choices=["eq", "gt", "gte", "lt", "lte", "in"]),
        help_text="Operators accepted: `col=` (eq), `col__gt=`, ..., `col__in=a,b`.",
    )


class ResourceSerializer(serializers.Serializer):
    """A resource of the lake as the catalog lists it."""

    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=["table", "files"])
    description = serializers.CharField()
    columns = ColumnSerializer(many=True)
    versioning = serializers.BooleanField()
    current_version = serializers.IntegerField(
        allow_null=True, help_text="Latest version; null where versioning is off."
    )
    row_count = serializers.IntegerField(
        allow_null=True,
        help_text="Rows (an estimate on large tables); null for a folder not read yet, "
        "and for a caller whose grant filters the rows.",
    )
    access = serializers.ListField(
        child=serializers.ChoiceField(choices=Privilege.choices),
        help_text="The caller's own privileges on this resource.",
    )
    restrictions = serializers.DictField(
        allow_null=True,
        help_text="The restrictions of the caller's `read` (union of their grants): "
        "`columns` (null: all), `row_filter` (null: every row), `masked`; null if none.",
    )
    url = serializers.URLField()


class RowsPageSerializer(serializers.Serializer):
    """One page of a resource's records."""

    count = serializers.IntegerField(help_text="Matching rows (see `count_is_estimate`).")
    count_is_estimate = serializers.BooleanField(
        help_text="True when `count` is the planner's estimate (large results)."
    )
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    next_cursor = serializers.CharField(
        allow_null=True, help_text="Pass as `?cursor=` for the next page; null on the last page."
    )
    results = serializers.ListField(child=serializers.DictField(), help_text="The records.")
