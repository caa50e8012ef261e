"""Serializers of the catalog (read only: resources are registered, not posted)."""

from rest_framework import serializers

from accounts.models import Privilege


class ColumnSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="Column name, as used in `fields`, filters, ordering.")
    type = serializers.ChoiceField(
        choices=["string", "integer", "decimal", "date", "timestamp", "boolean", "array"],
        help_text="How values are written and filtered (API.md: decimals as strings, "
        "timestamps ISO 8601 with a time zone).",
    )
    filters = serializers.ListField(
        child=serializers.ChoiceField(choices=["eq", "gt", "gte", "lt", "lte", "in"]),
        help_text="Operators accepted: `col=` (eq), `col__gt=`, ..., `col__in=a,b`.",
    )


class ResourceSerializer(serializers.Serializer):
    """A resource of the lake as the catalog lists it."""

    name = serializers.CharField(help_text="The resource's name, as in its URLs and grants.")
    kind = serializers.ChoiceField(
        choices=["table", "files"],
        help_text="`table`: a PostgreSQL table; `files`: a folder of raw files read in place.",
    )
    description = serializers.CharField(help_text="What the resource holds.")
    columns = ColumnSerializer(many=True, help_text="Its columns (those your grant shows).")
    versioning = serializers.BooleanField(
        help_text="True when each load makes a version readable at `versions/{n}/rows/`."
    )
    current_version = serializers.IntegerField(
        allow_null=True, help_text="Latest version; null where versioning is off."
    )
    derived_through_version = serializers.DictField(
        child=serializers.IntegerField(),
        allow_null=True,
        help_text="Each follower of the resource (`search`, `metrics`): the last version "
        "it has derived, the version its reads answer at; null if none follows it.",
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
    url = serializers.URLField(help_text="This resource; its rows are at `rows/`.")


class RowsPageSerializer(serializers.Serializer):
    """One page of a resource's records."""

    count = serializers.IntegerField(help_text="Matching rows (see `count_is_estimate`).")
    count_is_estimate = serializers.BooleanField(
        help_text="True when `count` is the planner's estimate (large results)."
    )
    next = serializers.URLField(
        allow_null=True, help_text="The URL of the next page; null on the last page."
    )
    previous = serializers.URLField(
        allow_null=True, help_text="The URL of the previous page; null on the first page."
    )
    next_cursor = serializers.CharField(
        allow_null=True, help_text="Pass as `?cursor=` for the next page; null on the last page."
    )
    data_version = serializers.CharField(
        help_text="The state of the data the page read, as in `X-Data-Version`: a version "
        "number (`42`), `stamp:<n>` (a table without versions) or `files:<digest>` (a "
        "folder). Every page of a walk by `next_cursor` reads its first page's."
    )
    results = serializers.ListField(child=serializers.DictField(), help_text="The records.")


class RowsBadRequestSerializer(serializers.Serializer):
    """400 of `rows/`: bad input (`invalid`, with `errors`), or `query_too_expensive`: the
    cost guard refused the query before it ran (with the estimate, the limit, hints)."""

    detail = serializers.CharField(help_text="A sentence a person can act on.")
    code = serializers.CharField(help_text="`invalid` or `query_too_expensive`.")
    errors = serializers.DictField(
        required=False, help_text="`invalid`: the messages by parameter."
    )
    estimated_cost = serializers.FloatField(
        required=False,
        help_text="`query_too_expensive`: the planner's estimated cost of the page "
        "(PostgreSQL cost units).",
    )
    max_cost = serializers.FloatField(
        required=False, help_text="`query_too_expensive`: the limit (`LAKE_QUERY_MAX_COST`)."
    )
    hints = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="`query_too_expensive`: what to change: a filter on an indexed column "
        "(named), `cursor` instead of a deep `page=`, an order by an indexed column.",
    )
