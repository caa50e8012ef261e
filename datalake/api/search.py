"""`GET /api/v1/search/`: every record mentioning a text since a date, by resource.

Only the resources the caller may `read` are searched and named; a caller who can
read none gets an empty answer, not a 403 (there is nothing to refuse: the search
simply covers nothing).
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

import orjson
from django.db import connection
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import resources_with
from datalake.models import Resource
from datalake.search import query
from datalake.search.index import SPECS

from .filtering import reject_unknown_params

Q_HELP = (
    "The text: an id, a code, a country, words. Searched literally (no query syntax); "
    "every word must match; an id-like word of 4+ characters also matches as a prefix."
)
SINCE_HELP = "Only records dated on or after this day (YYYY-MM-DD, UTC)."


class SearchParams(serializers.Serializer):
    q = serializers.CharField(max_length=200, trim_whitespace=True, help_text=Q_HELP)
    since = serializers.DateField(help_text=SINCE_HELP)


class SearchHitSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The record's key in its table.")
    at = serializers.DateTimeField(help_text="The record's date.")
    record = serializers.DictField(
        required=False, help_text="Tables: the record as currently stored."
    )
    _file = serializers.CharField(required=False, help_text="Raw files: the file's name.")
    _line = serializers.IntegerField(required=False, help_text="Raw files: the line number.")
    url = serializers.CharField(required=False, help_text="Where to read the record.")


class SearchResourceSerializer(serializers.Serializer):
    resource = serializers.CharField()
    matches = serializers.IntegerField(help_text="Matching records (at most 1000 counted).")
    matches_capped = serializers.BooleanField(help_text="True when there are more than 1000.")
    results = SearchHitSerializer(many=True, help_text="At most 10 records, ranked.")


class SearchBodySerializer(serializers.Serializer):
    q = serializers.CharField()
    since = serializers.DateField()
    total = serializers.IntegerField(help_text="Sum of the resources' matches.")
    resources = SearchResourceSerializer(many=True)


def readable(user) -> tuple[list[str], list[str]]:
    """(tables, landing folders) the user may read, among those the index covers."""
    names = set(Resource.objects.values_list("name", flat=True))
    allowed = resources_with(user, "read")
    if allowed is not None:
        names &= allowed
    tables = sorted(n for n in names if n in SPECS)
    folders = sorted(n.removeprefix("raw_") for n in names if n.startswith("raw_"))
    return tables, folders


def records(table: str, keys: list[str]) -> dict[str, dict]:
    """The current rows of `table` with these keys, as JSON-ready dicts."""
    spec = SPECS[table]
    current = "AND t.valid_to IS NULL" if spec.versioned else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {spec.key}, to_jsonb(t) - 'id' - 'valid_from' - 'valid_to' "
            f"FROM {table} t WHERE {spec.key} = ANY(%s) {current}",
            [keys],
        )
        # Django reads jsonb as text.
        return {key: orjson.loads(row) for key, row in cursor.fetchall()}


def key_column(table: str) -> str | None:
    key = SPECS[table].key
    return key.removeprefix("t.") if key.startswith("t.") and key[2:].isidentifier() else None


class SearchView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="search",
        description="Every record of every resource you can `read`, dated on or after `since`, "
        "that mentions `q` (an id such as a transaction_id, a country code or name, a word of "
        "a product description), grouped by resource: at most 10 records each, an exact key "
        "match first, then newest first. Raw-file matches name the file and line. Resources "
        "you cannot read are neither searched nor named.",
        parameters=[
            OpenApiParameter("q", OpenApiTypes.STR, required=True, description=Q_HELP),
            OpenApiParameter("since", OpenApiTypes.DATE, required=True, description=SINCE_HELP),
        ],
        responses=SearchBodySerializer,
        examples=[
            OpenApiExample(
                "An id found in a table and in the file it came from",
                value={
                    "q": "TX-000123",
                    "since": "2026-01-01",
                    "total": 2,
                    "resources": [
                        {
                            "resource": "raw_transactions",
                            "matches": 1,
                            "matches_capped": False,
                            "results": [
                                {
                                    "key": "TX-000123",
                                    "at": "2026-01-05T10:12:00Z",
                                    "_file": "2026-01-05.jsonl",
                                    "_line": 17,
                                    "url": "/api/v1/resources/raw_transactions/rows/"
                                    "?_file=2026-01-05.jsonl&_line=17",
                                }
                            ],
                        },
                        {
                            "resource": "transactions",
                            "matches": 1,
                            "matches_capped": False,
                            "results": [
                                {
                                    "key": "TX-000123",
                                    "at": "2026-01-05T10:12:00Z",
                                    "record": {"transaction_id": "TX-000123", "country": "FR"},
                                    "url": "/api/v1/resources/transactions/rows/"
                                    "?transaction_id=TX-000123",
                                }
                            ],
                        },
                    ],
                },
                response_only=True,
            )
        ],
        tags=["search"],
    )
    def get(self, request):
        reject_unknown_params(request, {"q", "since", "format"})
        params = SearchParams(data=request.query_params)
        params.is_valid(raise_exception=True)
        q, since = params.validated_data["q"], params.validated_data["since"]
        tables, folders = readable(request.user)
        found, _searchable = query.search(q, since, tables, folders)
        body = [self.resource_body(r) for r in sorted(found, key=lambda r: r.resource)]
        return Response(
            {
                "q": q,
                "since": since,
                "total": sum(r["matches"] for r in body),
                "resources": body,
            }
        )

    def resource_body(self, found: query.ResourceMatches) -> dict:
        results = []
        if found.resource.startswith("raw_"):
            base = f"/api/v1/resources/{found.resource}/rows/"
            for hit in found.hits:
                where = {"_file": hit.raw_file, "_line": hit.raw_line}
                url = f"{base}?{urlencode(where)}"
                results.append({"key": hit.key, "at": _utc(hit.at), **where, "url": url})
        else:
            stored = records(found.resource, [h.key for h in found.hits])
            column = key_column(found.resource)
            for hit in found.hits:
                item = {"key": hit.key, "at": _utc(hit.at), "record": stored.get(hit.key)}
                if column:
                    query_string = urlencode({column: hit.key})
                    item["url"] = f"/api/v1/resources/{found.resource}/rows/?{query_string}"
                results.append(item)
        return {
            "resource": found.resource,
            "matches": found.matches,
            "matches_capped": found.capped,
            "results": results,
        }


def _utc(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
