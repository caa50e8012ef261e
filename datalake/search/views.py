"""`GET /api/v1/search/`: every record mentioning a text since a date, by resource.

Only the resources the caller may `read` are searched and named; a caller who can
read none gets an empty answer, not a 403 (there is nothing to refuse: the search
simply covers nothing).
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

import orjson
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import Access, data_path
from datalake.api import freshness
from datalake.api.filtering import reject_unknown_params
from datalake.api.freshness import FreshnessParams
from datalake.catalog.rawfiles import records_at
from datalake.lake import followers
from datalake.models import Resource
from datalake.platform import replicas
from datalake.search import query
from datalake.search.index import SPECS, versioned_tables

Q_HELP = (
    "The text: an id, a code, a country, words. Searched literally (no query syntax); "
    "every word must match; an id-like word of 4+ characters also matches as a prefix, "
    "unless it begins too many records (400 `query_too_broad`: give more of it)."
)
SINCE_HELP = (
    "Only records dated on or after this day (YYYY-MM-DD, UTC); not applied to a resource "
    "whose date your grant hides or masks."
)


class QueryTooBroad(exceptions.ValidationError):
    """400 `query_too_broad`: a prefix of too many records; the hint says which word."""

    default_code = "query_too_broad"


MIN_VERSION_SEARCH_HELP = (
    "Answer only once the search index includes this version of `transactions` (waits up "
    "to FOLLOWER_WAIT_SECONDS, then 503 `not_derived_yet` with Retry-After)."
)


class SearchParams(FreshnessParams):
    q = serializers.CharField(max_length=200, trim_whitespace=True, help_text=Q_HELP)
    since = serializers.DateField(help_text=SINCE_HELP)

    def get_fields(self):
        fields = super().get_fields()
        fields["min_version"].help_text = MIN_VERSION_SEARCH_HELP
        return fields


class SearchHitSerializer(serializers.Serializer):
    key = serializers.CharField(
        allow_null=True, help_text="The record's key in its table (null if your grant hides it)."
    )
    at = serializers.DateTimeField(
        allow_null=True, help_text="The record's date (null if your grant hides or masks it)."
    )
    record = serializers.DictField(
        required=False,
        allow_null=True,
        help_text="The record found, through your grant's columns and masks: in a table as "
        "currently stored; in a raw file as its line says it (`_file`, `_line` and the "
        "folder's columns, typed as the raw rows endpoint gives them). Null if it is gone "
        "(or outside your grant's rows).",
    )
    _file = serializers.CharField(
        required=False, help_text="Raw files: the file's name (absent if your grant masks it)."
    )
    _line = serializers.IntegerField(
        required=False, help_text="Raw files: the line number (absent if your grant masks it)."
    )
    url = serializers.CharField(
        required=False,
        help_text="Where to read the record (absent where it would name a masked key).",
    )


class SearchResourceSerializer(serializers.Serializer):
    resource = serializers.CharField(help_text="The resource searched (a table or a folder).")
    matches = serializers.IntegerField(help_text="Matching records (at most 1000 counted).")
    matches_capped = serializers.BooleanField(help_text="True when there are more than 1000.")
    results = SearchHitSerializer(many=True, help_text="At most 10 records, ranked.")


class SearchBodySerializer(serializers.Serializer):
    q = serializers.CharField(help_text="The text searched, as given.")
    since = serializers.DateField(help_text="The first day searched, as given.")
    total = serializers.IntegerField(help_text="Sum of the resources' matches.")
    resources = SearchResourceSerializer(
        many=True, help_text="Each resource you may read that has matches."
    )
    as_of_version = serializers.IntegerField(
        allow_null=True,
        help_text="The version of `transactions` the index includes (the search follower's "
        "position; null if you may not read it); `as_of_versions` gives each table's.",
    )
    as_of_versions = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="Each versioned table searched: the version its entries include.",
    )
    lag_seconds = serializers.FloatField(
        help_text="The largest of the searched tables': seconds since the oldest version not "
        "yet in the index was made (0: up to date)."
    )


def readable(access: Access) -> tuple[list[str], list[str]]:
    """(tables, landing folders) the user may read, among those the index covers."""
    names = set(Resource.objects.readable_by(access.user).values_list("name", flat=True))
    tables = sorted(n for n in names if n in SPECS)
    folders = sorted(n.removeprefix("raw_") for n in names if n.startswith("raw_"))
    return tables, folders


# Raw folders whose columns are named as their table's: searchable under a restriction.
RAW_AS_TABLE = {"transactions": "transactions"}


def run_search(access: Access, tables, folders, q: str, since) -> list[query.ResourceMatches]:
    """Unrestricted resources in one search; each restricted one on its own terms."""
    limits = access.restrictions([*tables, *(f"raw_{f}" for f in folders)])
    free_tables = [t for t in tables if not limits[t].restricted]
    free_folders = [f for f in folders if not limits[f"raw_{f}"].restricted]
    found, _searchable = query.search(q, since, free_tables, free_folders)
    for table in tables:
        if limits[table].restricted:
            found.append(query.search_restricted(table, table, limits[table], q, since))
    for folder in folders:
        name = f"raw_{folder}"
        if limits[name].restricted and folder in RAW_AS_TABLE:
            found.append(
                query.search_restricted(
                    name, RAW_AS_TABLE[folder], limits[name], q, since, raw_source=folder
                )
            )
    return [r for r in found if r.matches]


def records(table: str, keys: list[str]) -> dict[str, dict]:
    """The current rows of `table` with these keys, as JSON-ready dicts."""
    spec = SPECS[table]
    current = "AND t.valid_to IS NULL" if spec.versioned else ""
    with replicas.reads().cursor() as cursor:
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


@data_path("every resource the user reads (`Access.resources_with`), each under its restriction")
class SearchView(replicas.ReplicaReads, APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="search",
        description="Every record of every resource you can `read`, dated on or after `since`, "
        "that mentions `q` (an id such as a transaction_id, a country code or name, a word of "
        "a product description), grouped by resource: at most 10 records each, an exact key "
        "match first, then newest first. Every hit carries its record; raw-file hits also "
        "name the file and line. Where your grant hides or masks a resource's date, `since` "
        "does not apply to it and its hits come in an order that says nothing of the date "
        "(their `at` is null). Resources you cannot read are neither searched nor named. "
        "An id-like word that begins too many records is refused (400 `query_too_broad`); a "
        "search past the API's statement time limit answers 503 `query_timeout`.",
        parameters=[
            OpenApiParameter("q", OpenApiTypes.STR, required=True, description=Q_HELP),
            OpenApiParameter("since", OpenApiTypes.DATE, required=True, description=SINCE_HELP),
            OpenApiParameter("min_version", OpenApiTypes.INT, description=MIN_VERSION_SEARCH_HELP),
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
                                    "record": {
                                        "_file": "2026-01-05.jsonl",
                                        "_line": 17,
                                        "transaction_id": "TX-000123",
                                        "country": "FR",
                                    },
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
        reject_unknown_params(request, {"q", "since", "format", "min_version"})
        params = SearchParams(data=request.query_params)
        params.is_valid(raise_exception=True)
        q, since = params.validated_data["q"], params.validated_data["since"]
        # Where the index stands on each versioned table the caller may read (one query);
        # with `min_version`, once it includes that version of transactions (bounded wait).
        access = Access.of(request)
        tables, folders = readable(access)
        followed = [t for t in tables if t in versioned_tables()]
        min_version = params.validated_data.get("min_version")
        if min_version is not None:
            if "transactions" not in followed:
                raise exceptions.ValidationError(
                    {"min_version": ["It names a version of transactions, which you may not read."]}
                )
            freshness.require("search", "transactions", min_version)
        positions = followers.states_of("search", followed) if followed else {}
        try:
            found = run_search(access, tables, folders, q, since)
        except query.TooBroad as broad:
            raise QueryTooBroad({"q": [too_broad_hint(broad)]}) from None
        body = [self.resource_body(request, r) for r in sorted(found, key=lambda r: r.resource)]
        lag = max((s.lag_seconds for s in positions.values()), default=0.0)
        response = Response(
            {
                "q": q,
                "since": since,
                "total": sum(r["matches"] for r in body),
                "resources": body,
                "as_of_version": positions["transactions"].derived_through_version
                if "transactions" in positions
                else None,
                "as_of_versions": {
                    name: s.derived_through_version for name, s in sorted(positions.items())
                },
                "lag_seconds": round(lag, 3),
            }
        )
        if "transactions" in positions:
            freshness.headers(response, positions["transactions"])
        return response

    def resource_body(self, request, found: query.ResourceMatches) -> dict:
        results = []
        limit = Access.of(request).restrictions([found.resource])[found.resource]
        if found.resource.startswith("raw_"):
            base = f"/api/v1/resources/{found.resource}/rows/"
            stored = raw_records(found.resource.removeprefix("raw_"), found.hits)
            for hit in found.hits:
                where = {"_file": hit.raw_file, "_line": hit.raw_line}
                record = restrict(limit, stored.get((hit.raw_file, hit.raw_line)))
                url = f"{base}?{urlencode(where)}"
                results.append(
                    {"key": hit.key, "at": _utc(hit.at), **where, "record": record, "url": url}
                )
        else:
            stored = records(found.resource, [h.key for h in found.hits])
            column = key_column(found.resource)
            for hit in found.hits:
                record = stored.get(hit.key)
                if limit.restricted and record is not None:
                    record = limit.mask_rows([{k: record[k] for k in limit.visible(record)}])[0]
                item = {"key": hit.key, "at": _utc(hit.at), "record": record}
                if column:
                    query_string = urlencode({column: hit.key})
                    item["url"] = f"/api/v1/resources/{found.resource}/rows/?{query_string}"
                results.append(item)
        if limit.restricted:
            hide_located(found.resource, limit, results)
        return {
            "resource": found.resource,
            "matches": found.matches,
            "matches_capped": found.capped,
            "results": results,
        }


def too_broad_hint(broad: query.TooBroad) -> str:
    return (
        f"`{broad.term}` begins the ids or codes of more than {broad.limit} records: give "
        "more of it (the whole id), or search for a whole word."
    )


def raw_records(folder: str, hits: list[query.Hit]) -> dict[tuple[str, int], dict]:
    """The records of the hits' file lines, as the files say them (one read per file)."""
    lines: dict[str, set[int]] = {}
    for hit in hits:
        lines.setdefault(hit.raw_file, set()).add(hit.raw_line)
    return {
        (file, line): record
        for file, wanted in lines.items()
        for line, record in records_at(folder, file, wanted).items()
    }


def restrict(limit, record: dict | None) -> dict | None:
    """A raw record through the reader's grant, as the raw rows endpoint shows it: outside
    its row filter, none; hidden columns dropped, masked ones pseudonymised."""
    if record is None or not limit.restricted:
        return record
    if limit.rows is not None and not any(
        all(record.get(name) in values for name, values in allowed.items())
        for allowed in limit.rows
    ):
        return None
    return limit.mask_rows([{k: record[k] for k in limit.visible(record)}])[0]


def hide_located(resource: str, limit, results: list[dict]) -> None:
    """What a hit says besides its record (its key, its date, a raw line's file and
    number, the URL made of them) is shown only where the grant shows, unmasked, every
    column it is made of: otherwise it would give in clear what the record masks."""
    raw = resource.startswith("raw_")
    spec = SPECS.get(RAW_AS_TABLE.get(resource.removeprefix("raw_"), resource))

    def concealed(names) -> bool:
        return query.concealed(limit, names)

    key_hidden = spec is not None and concealed(query._COLUMN.findall(spec.key))
    at_hidden = spec is not None and concealed(query._COLUMN.findall(spec.at))
    where_hidden = raw and concealed(("_file", "_line"))
    for item in results:
        if key_hidden:
            item["key"] = None
            if not raw:  # a table's URL looks the key up
                item.pop("url", None)
        if at_hidden:
            item["at"] = None
        if where_hidden:
            for name in ("_file", "_line", "url"):
                item.pop(name, None)


def _utc(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
