"""The Delta Sharing protocol (delta-io/delta-sharing PROTOCOL.md), parquet format.

Recipients authenticate with their API token as the profile's `bearerToken`
(`Authorization: Bearer <key>`; `Token <key>` works too). Every call is in the
request log; the calls that read a table name it, so it is in that table's access
log. Errors are the portal's envelope (`detail`, `code`) with the protocol's own
fields (`errorCode`, `message`) added, so connectors show the reason.
"""

from __future__ import annotations

import re

import orjson
from django.contrib.auth import get_user_model
from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import Access, data_path, serves_no_data
from accounts.authentication import (
    BearerTokenAuthentication,
    HashedTokenAuthentication,
    token_is_live,
)
from datalake.api.errors import exception_handler
from datalake.api.strict import StrictSerializer
from datalake.errors import AccessDenied, Invalid, NotFound
from datalake.sharing import links, snapshots
from datalake.sharing.api.files import file_response, within
from datalake.sharing.profiles import profile
from datalake.sharing.shares import (
    SCHEMAS,
    SHARE,
    parse_timestamp,
    shared_table,
    shared_tables,
    stable_id,
)

NDJSON = "application/x-ndjson; charset=utf-8"
PROTOCOL = {"protocol": {"minReaderVersion": 1}}
TABLE_VERSION = "delta-table-version"
CAPABILITIES = "delta-sharing-capabilities"
PAGE_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
ERROR_CODES = {
    400: "INVALID_PARAMETER_VALUE",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    405: "METHOD_NOT_ALLOWED",
    409: "RESOURCE_CONFLICT",
    413: "REQUEST_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "TOO_MANY_REQUESTS",
}


def protocol_exception_handler(exc, context):
    response = exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict):
        response.data["errorCode"] = ERROR_CODES.get(response.status_code, "INTERNAL_ERROR")
        response.data["message"] = response.data.get("detail", "")
    return response


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """The schema's name for `Authorization: Bearer <key>` (the profile's token)."""

    target_class = BearerTokenAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="Authorization",
                                                   token_prefix="Bearer")  # fmt: skip


class SharingView(APIView):
    """A protocol endpoint: bearer or token authentication, protocol error fields."""

    authentication_classes = [BearerTokenAuthentication, HashedTokenAuthentication]

    def get_exception_handler(self):
        return protocol_exception_handler


def ndjson(lines: list[dict], version: int, status: int = 200) -> HttpResponse:
    body = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    response = HttpResponse(body, content_type=NDJSON, status=status)
    response[TABLE_VERSION] = str(version)
    response[CAPABILITIES] = "responseformat=parquet"
    return response


def page(items: list[dict], params) -> dict:
    """`maxResults` items after `pageToken` (the last name of the page before)."""
    raw_max = params.get("maxResults")
    try:
        limit = int(raw_max) if raw_max not in (None, "") else 500
    except ValueError:
        limit = 0
    if not 1 <= limit <= 1000:
        raise Invalid({"maxResults": ["An integer from 1 to 1000."]})
    token = params.get("pageToken") or ""
    if token and not PAGE_TOKEN.match(token):
        raise Invalid({"pageToken": ["Not a page token of this server."]})
    after = [item for item in items if not token or item["name"] > token]
    body: dict = {"items": after[:limit]}
    if len(after) > limit:
        body["nextPageToken"] = after[limit - 1]["name"]
    return body


PAGING = [
    OpenApiParameter("maxResults", int, description="At most this many items (1-1000, 500)."),
    OpenApiParameter("pageToken", str, description="`nextPageToken` of the previous page."),
]


class ShareSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The share's name (`lake`).")
    id = serializers.CharField(help_text="A stable id of the share.")


class SchemaSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The schema: `tables` or `files`.")
    share = serializers.CharField(help_text="The share it belongs to.")


class TableSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The table: a resource name.")
    schema = serializers.CharField(help_text="Its schema (`tables` or `files`).")
    share = serializers.CharField(help_text="Its share (`lake`).")
    shareId = serializers.CharField(help_text="The share's id.")
    id = serializers.CharField(help_text="A stable id of the table.")


def _listing(child, what: str):
    return inline_serializer(
        f"Sharing{what}List",
        {
            "items": child(many=True, help_text=f"The {what.lower()} of this page."),
            "nextPageToken": serializers.CharField(
                required=False, help_text="Give it as `pageToken` for the next page."
            ),
        },
    )


def example(value, media_type: str | None = None) -> list[OpenApiExample]:
    return [OpenApiExample("Example", value=value, response_only=True, media_type=media_type)]


SHARE_PARAM = OpenApiParameter("share", str, OpenApiParameter.PATH, description="`lake`.")
SCHEMA_PARAM = OpenApiParameter(
    "schema", str, OpenApiParameter.PATH, description="`tables` or `files`."
)
TABLE_PARAM = OpenApiParameter(
    "table", str, OpenApiParameter.PATH, description="A resource name, e.g. `transactions`."
)
TABLE_PARAMS = [SHARE_PARAM, SCHEMA_PARAM, TABLE_PARAM]
TABLE_ITEM = {"name": "transactions", "schema": "tables", "share": "lake",
              "shareId": "5f0c…", "id": "8b1e…"}  # fmt: skip
NDJSON_EXAMPLE = (
    '{"protocol":{"minReaderVersion":1}}\n{"metaData":{"id":"8b1e…","format":{"provider":'
    '"parquet"},"schemaString":"{\\"type\\":\\"struct\\",…}","partitionColumns":[]}}\n'
    '{"file":{"url":"https://…/api/v1/delta-sharing/files/…","id":"…","partitionValues":{},'
    '"size":1048576,"stats":"{\\"numRecords\\":1000000}","expirationTimestamp":1767225600000}}'
)


TAGS = ["delta sharing"]


def inline_listing_one():
    return inline_serializer("SharingShare", {"share": ShareSerializer(help_text="The share.")})


@serves_no_data("the one share's name")
class SharesView(SharingView):
    @extend_schema(
        operation_id="sharing_shares",
        examples=example({"items": [{"name": "lake", "id": "5f0c…"}]}),
        summary="List shares",
        description="The shares this server offers: one, `lake`.",
        parameters=PAGING,
        responses=_listing(ShareSerializer, "Shares"),
        tags=TAGS,
    )
    def get(self, request):
        return Response(page([{"name": SHARE, "id": stable_id(SHARE)}], request.query_params))


@serves_no_data("the one share's name")
class ShareView(SharingView):
    @extend_schema(
        operation_id="sharing_share",
        parameters=[SHARE_PARAM],
        examples=example({"share": {"name": "lake", "id": "5f0c…"}}),
        summary="Get a share",
        responses=inline_listing_one(),
        tags=TAGS,
    )
    def get(self, request, share):
        if share != SHARE:
            raise NotFound(f"No share {share!r}: this portal shares one, {SHARE!r}.")
        return Response({"share": {"name": SHARE, "id": stable_id(SHARE)}})


@serves_no_data("the schema names, which are the resource kinds")
class SchemasView(SharingView):
    @extend_schema(
        operation_id="sharing_schemas",
        examples=example({"items": [{"name": "tables", "share": "lake"}]}),
        summary="List the schemas of a share",
        description="`tables` (PostgreSQL tables) and `files` (raw-file folders).",
        parameters=[SHARE_PARAM, *PAGING],
        responses=_listing(SchemaSerializer, "Schemas"),
        tags=TAGS,
    )
    def get(self, request, share):
        if share != SHARE:
            raise NotFound(f"No share {share!r}: this portal shares one, {SHARE!r}.")
        items = [{"name": name, "share": SHARE} for name in SCHEMAS]
        return Response(page(items, request.query_params))


@data_path("the resources of one kind the user may read (`Access.resources_with`)")
class TablesView(SharingView):
    @extend_schema(
        operation_id="sharing_tables",
        examples=example({"items": [TABLE_ITEM], "nextPageToken": "transactions"}),
        summary="List the tables of a schema",
        description="The resources of the schema's kind that the token's user may `read`.",
        parameters=[SHARE_PARAM, SCHEMA_PARAM, *PAGING],
        responses=_listing(TableSerializer, "Tables"),
        tags=TAGS,
    )
    def get(self, request, share, schema):
        items = shared_tables(Access.of(request), share, schema)
        return Response(page(items, request.query_params))


@data_path("every resource the user may read (`Access.resources_with`)")
class AllTablesView(SharingView):
    @extend_schema(
        operation_id="sharing_all_tables",
        examples=example({"items": [TABLE_ITEM]}),
        summary="List all the tables of a share",
        parameters=[SHARE_PARAM, *PAGING],
        responses=_listing(TableSerializer, "AllTables"),
        tags=TAGS,
    )
    def get(self, request, share):
        items = shared_tables(Access.of(request), share)
        return Response(page(items, request.query_params))


TABLE_RESPONSE = {
    (200, "application/x-ndjson"): OpenApiResponse(
        OpenApiTypes.STR,
        description="Newline-delimited JSON: a `protocol` line, a `metaData` line, then "
        "(query, changes) one line per file. Header `delta-table-version`.",
        examples=example(NDJSON_EXAMPLE, "application/x-ndjson"),
    )
}


def _timestamp_param(request, name: str):
    value = request.query_params.get(name)
    return None if value in (None, "") else parse_timestamp(value, name)


@data_path("the table named in the path, after `Access.require('read')`")
class TableVersionView(SharingView):
    @extend_schema(
        operation_id="sharing_table_version",
        summary="The table's version",
        description="Empty body; the version in the `delta-table-version` header. With "
        "`startingTimestamp`: the first version made at or after it.",
        parameters=[
            *TABLE_PARAMS,
            OpenApiParameter("startingTimestamp", str, description="ISO 8601 timestamp."),
        ],
        responses={
            (200, "text/plain"): OpenApiResponse(
                OpenApiTypes.STR,
                description="An empty body; the version is in `delta-table-version`.",
                examples=example("", "text/plain"),
            )
        },
        tags=TAGS,
    )
    def get(self, request, share, schema, table):
        shared = shared_table(Access.of(request), share, schema, table)
        since = _timestamp_param(request, "startingTimestamp")
        version = shared.version if since is None else shared.version_since(since)
        response = HttpResponse(status=200, content_type="text/plain")
        response[TABLE_VERSION] = str(version)
        return response


@data_path("the table named in the path, after `Access.require('read')`")
class TableMetadataView(SharingView):
    @extend_schema(
        operation_id="sharing_table_metadata",
        parameters=TABLE_PARAMS,
        summary="The table's schema",
        description="The Spark schema of the columns the recipient's grant shows (masked "
        "columns are strings, hidden ones absent).",
        responses=TABLE_RESPONSE,
        tags=TAGS,
    )
    def get(self, request, share, schema, table):
        shared = shared_table(Access.of(request), share, schema, table)
        return ndjson([PROTOCOL, shared.metadata()], shared.version)


class QuerySerializer(StrictSerializer):
    version = serializers.IntegerField(
        required=False, min_value=0, max_value=2**31 - 1, help_text="Read this version."
    )
    timestamp = serializers.CharField(
        required=False, max_length=64, help_text="Read the version current at this time."
    )
    limitHint = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=2**63 - 1,
        help_text="A hint: the recipient needs this many rows (only the first files that "
        "hold them are listed; each file is whole).",
    )
    predicateHints = serializers.ListField(
        child=serializers.CharField(max_length=10_000),
        required=False,
        max_length=100,
        help_text="SQL predicate hints (ignored: the recipient filters the rows itself).",
    )
    jsonPredicateHints = serializers.CharField(
        required=False,
        max_length=100_000,
        help_text="JSON predicate hints (ignored: the recipient filters the rows itself).",
    )

    def validate(self, attrs):
        if "version" in attrs and "timestamp" in attrs:
            raise serializers.ValidationError("Give `version` or `timestamp`, not both.")
        return attrs


def _file_url(request):
    def url(token: str) -> str:
        return request.build_absolute_uri(reverse("sharing-file", args=[token]))

    return url


@data_path("the table named in the path, after `Access.require('read')`, under its restriction")
class TableQueryView(SharingView):
    @extend_schema(
        operation_id="sharing_table_query",
        parameters=TABLE_PARAMS,
        summary="Read the table's files",
        description="The Parquet files of the table (now, at `version`, or at `timestamp`) "
        "as the recipient's grant shows it, each by a pre-signed URL valid for "
        "SHARING_URL_LIFETIME_SECONDS. `limitHint` lists only the files that hold that many "
        "rows; predicate hints are accepted and not applied (the recipient filters).",
        request=QuerySerializer,
        responses=TABLE_RESPONSE,
        tags=TAGS,
    )
    def post(self, request, share, schema, table):
        shared = shared_table(Access.of(request), share, schema, table)
        body = QuerySerializer(data=request.data if request.data is not None else {})
        body.is_valid(raise_exception=True)
        version = body.validated_data.get("version")
        if version is not None:
            shared.check_version(version)
        elif "timestamp" in body.validated_data:
            version = shared.version_at(
                parse_timestamp(body.validated_data["timestamp"], "timestamp")
            )
        limit = body.validated_data.get("limitHint")
        at, files = shared.query(_file_url(request), version, limit)
        return ndjson([PROTOCOL, shared.metadata(at), *files], at)


def _int_param(request, name: str, required: bool = False) -> int | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        if required:
            raise Invalid({name: ["Required."]})
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 10:
        raise Invalid({name: ["A version number (a non-negative integer)."]})
    return int(value)


@data_path("the table named in the path, after `Access.require('read')`, under its restriction")
class TableChangesView(SharingView):
    @extend_schema(
        operation_id="sharing_table_changes",
        summary="Read the table's change feed",
        description="The changes of versions startingVersion..endingVersion (or from "
        "startingTimestamp to endingTimestamp): one `cdf` file per version with "
        "`_change_type` (insert, delete, update_preimage, update_postimage).",
        parameters=[
            *TABLE_PARAMS,
            OpenApiParameter("startingVersion", int, description="First version."),
            OpenApiParameter("endingVersion", int, description="Last version (default: now)."),
            OpenApiParameter("startingTimestamp", str, description="ISO 8601 timestamp."),
            OpenApiParameter("endingTimestamp", str, description="ISO 8601 timestamp."),
            OpenApiParameter(
                "includeHistoricalMetadata",
                OpenApiTypes.BOOL,
                description="Accepted; the schema has no history.",
            ),
        ],
        responses=TABLE_RESPONSE,
        tags=TAGS,
    )
    def get(self, request, share, schema, table):
        shared = shared_table(Access.of(request), share, schema, table)
        start = _int_param(request, "startingVersion")
        end = _int_param(request, "endingVersion")
        since = _timestamp_param(request, "startingTimestamp")
        until = _timestamp_param(request, "endingTimestamp")
        if start is not None and since is not None:
            raise Invalid({"startingTimestamp": ["Give startingVersion or startingTimestamp."]})
        if end is not None and until is not None:
            raise Invalid({"endingTimestamp": ["Give endingVersion or endingTimestamp."]})
        if since is not None:
            start = shared.version_since(since)
        if until is not None:
            end = shared.version_at(until)
        if start is None:
            raise Invalid({"startingVersion": ["Give startingVersion or startingTimestamp."]})
        lines = shared.changes(_file_url(request), start, end)
        return ndjson([PROTOCOL, shared.metadata(), *lines], shared.version)


@data_path("the file a signed URL names, if its signer still reads it with that restriction")
class SharedFileView(APIView):
    """A file by its pre-signed URL: no Authorization header (the URL is the right)."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="sharing_file",
        summary="A shared Parquet file",
        description="By the pre-signed URL a query gave. `Range` (one range) gives 206; "
        "an expired or altered URL, or one whose signer no longer reads the table with "
        "the same restriction, is a 403.",
        parameters=[
            OpenApiParameter(
                "token",
                str,
                OpenApiParameter.PATH,
                description="The signed token of the URL a query gave.",
            )
        ],
        responses={
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            (206, "application/octet-stream"): OpenApiTypes.BINARY,
        },
        examples=example("PAR1…", "application/octet-stream"),
        tags=TAGS,
    )
    def get(self, request, token):
        claim = links.verify(token)
        user = get_user_model().objects.filter(pk=claim.user_id, is_active=True).first()
        if user is None:
            raise AccessDenied("This file URL is not valid any more.", code="url_invalid")
        if claim.token_id is not None and not token_is_live(claim.token_id, user):
            raise AccessDenied("The token this URL was signed for is revoked or expired.",
                               code="url_invalid")  # fmt: skip
        request.user = user  # the request log names the recipient
        access = Access(user, request)
        access.require("read", claim.resource)
        if access.restriction(claim.resource).fingerprint() != claim.restriction_key:
            raise AccessDenied(
                "Your grant on this table changed since this URL was signed; "
                "query the table again.",
                code="url_invalid",
            )
        path = within(snapshots.root(), claim.relative)
        if path is None:
            raise NotFound("This file is no longer kept; query the table again.")
        return file_response(path, request.method, request.headers.get("Range"))

    def head(self, request, token):
        return self.get(request, token)


class ProfileSerializer(serializers.Serializer):
    shareCredentialsVersion = serializers.IntegerField(help_text="1.")
    endpoint = serializers.CharField(help_text="This server's Delta Sharing endpoint.")
    bearerToken = serializers.CharField(help_text="The token this request used.")
    expirationTime = serializers.CharField(
        required=False, help_text="When the token expires (absent: it does not)."
    )


@serves_no_data("the caller's own credentials as a profile file")
class ProfileView(APIView):
    @extend_schema(
        operation_id="sharing_profile",
        examples=example(
            {
                "shareCredentialsVersion": 1,
                "bearerToken": "…",
                "endpoint": "https://lake.example.com/api/v1/delta-sharing",
            }
        ),
        summary="A Delta Sharing profile file for this token",
        description="Save it as `lake.share` and read a table with "
        "`delta_sharing.load_as_pandas('lake.share#lake.tables.transactions')`. Call it "
        "with the token the profile should carry (`Authorization: Token <key>`).",
        responses=ProfileSerializer,
        tags=TAGS,
    )
    def get(self, request):
        header = request.headers.get("Authorization", "")
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() not in ("token", "bearer") or request.auth is None:
            raise Invalid(
                {
                    "Authorization": [
                        "Call this with the token the profile should "
                        "carry: Authorization: Token <key>."
                    ]
                }
            )
        response = Response(profile(request, parts[1], request.auth.expires_at))
        response["Content-Disposition"] = 'attachment; filename="lake.share"'
        response["Cache-Control"] = "no-store"
        return response

    authentication_classes = [HashedTokenAuthentication, BearerTokenAuthentication]
