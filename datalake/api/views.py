"""The catalog and the generic query API: `/api/v1/resources/...`."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from accounts import quotas
from accounts.access import Access, data_path
from accounts.access.permissions import ResourcePrivilege
from datalake.api import docs
from datalake.api.conditional import Conditional, body_tag
from datalake.api.errors import Conflict, ErrorSerializer
from datalake.api.exports import (
    ROWS_RENDERERS,
    ExportErrorsAsJson,
    export_response,
    is_export,
    refuse_paging,
)
from datalake.api.filtering import PAGING_PARAMS, reject_unknown_params
from datalake.api.pagination import PagePagination, rows_body
from datalake.api.serializers import (
    ResourceSerializer,
    RowsBadRequestSerializer,
    RowsPageSerializer,
)
from datalake.catalog import get_entry
from datalake.catalog.selectors import all_resources, describe_resources, resource_entry
from datalake.catalog.sync import sync_resources
from datalake.errors import AccessDenied
from datalake.models import Resource
from datalake.platform import replicas
from datalake.query import snapshots
from datalake.query.cursors import NOT_A_CURSOR
from datalake.query.grammar import parse_row_query
from datalake.query.rows import rows_page
from lineage.api.serializers import AccessLogSerializer, VersionSerializer
from lineage.filters import AccessLogFilter
from lineage.models import RequestLog, Version
from lineage.writer import flush as flush_request_log


@data_path("the resource named in the URL; the catalog: every resource's privileges")
class ResourceViewSet(replicas.ReplicaReads, ExportErrorsAsJson, viewsets.GenericViewSet):
    """Every resource of the lake: PostgreSQL tables and folders of raw files."""

    # Read from a replica when one has replayed the caller's writes (the access log: the
    # primary's, it is written by every request).
    replica_actions = frozenset({"list", "retrieve", "rows", "versions", "version_rows"})
    lookup_field = "name"
    lookup_value_regex = r"[A-Za-z0-9_\-]+"
    permission_classes = [ResourcePrivilege]
    required_privileges = {
        "rows": "read",
        "versions": "read",
        "version_rows": "read",
        "access_log": "grant",
    }
    filter_backends = []  # the rows grammar and access-log filters are applied explicitly
    quota_row_actions = {"rows", "version_rows"}  # counted against the rows a day
    queryset = Resource.objects.none()  # for the schema; entries come from the catalog

    def get_resource_name(self) -> str:
        return self._entry().name

    def initial(self, request, *args, **kwargs):
        name = self.kwargs.get("name", "")
        # Their first read, a table's current version, rides on the token lookup (a raw
        # folder's state is not read from the database; a walk's is in its cursor).
        walk = "cursor" in request.query_params
        if self.action in ("rows", "versions") and not walk and not name.startswith("raw_"):
            snapshots.ask_current(get_entry(name))
        super().initial(request, *args, **kwargs)

    def _entry(self):
        if not hasattr(self, "_cached_entry"):
            name = self.kwargs["name"]
            entry = resource_entry(name)
            if entry is None:
                raise NotFound(f"No resource named {name!r}; GET /api/v1/resources/ lists them.")
            self._cached_entry = entry
        return self._cached_entry

    @extend_schema(
        description="Every resource of the lake (tables and raw-file folders) with its columns, "
        "filter operators, versioning, row count and the caller's privileges.",
        responses=ResourceSerializer(many=True),
        parameters=docs.PAGE_PARAMETERS,
        examples=[docs.RESOURCE_EXAMPLE_LIST],
        tags=["catalog"],
    )
    def list(self, request):
        reject_unknown_params(request, PAGING_PARAMS)
        paginator = PagePagination()
        page = paginator.paginate_queryset(all_resources(), request, view=self)
        response = paginator.get_paginated_response(describe_resources(request, page))
        return self._by_body(request, response)

    @staticmethod
    def _by_body(request, response):
        """The catalog's answers are many small reads: their ETag is their body's."""
        terms = body_tag(request, response.data)
        return terms.not_modified() if terms.unchanged() else terms.answer(response)

    @extend_schema(
        description="One resource of the catalog.",
        parameters=[docs.NAME_PARAMETER],
        responses=ResourceSerializer,
        examples=[docs.RESOURCE_EXAMPLE],
        tags=["catalog"],
    )
    def retrieve(self, request, name=None):
        described = describe_resources(request, [self._entry()])
        if not described:  # an entry whose row is not registered yet
            sync_resources()
            described = describe_resources(request, [self._entry()])
        if not described:
            raise NotFound(f"No resource named {self.kwargs['name']!r}.")
        return self._by_body(request, Response(described[0]))

    @extend_schema(
        description=docs.ROWS_DESCRIPTION,
        parameters=docs.ROWS_PARAMETERS,
        responses={**docs.rows_responses(RowsPageSerializer), 400: RowsBadRequestSerializer},
        examples=[docs.ROWS_EXAMPLE, docs.ROWS_CSV_EXAMPLE, docs.QUERY_TOO_EXPENSIVE_EXAMPLE],
        tags=["catalog"],
    )
    @action(detail=True, methods=["get"], renderer_classes=ROWS_RENDERERS)
    def rows(self, request, name=None):
        entry = self._entry()
        query = self._row_query(entry)
        return self._rows(request, query, None if query.walk else snapshots.current(entry))

    def _rows(self, request, query, state):
        """A page of `query` at `state`, or at its cursor's snapshot, or the export of
        every row (CSV, Arrow); 304 if the client holds it (`datalake.api.conditional`).
        Counted against the caller's row quota (none left: 429 before the query runs)."""
        exporting = is_export(request)
        if exporting:
            refuse_paging(request)  # before any 304: a bad request is a 400 whatever is held
        files = None
        if query.walk is not None and not exporting:
            state, files = snapshots.pinned(query.entry, query.walk)
        state = state or snapshots.current(query.entry)
        # The restriction's terms, and the order's masking key (a hidden key's order).
        terms_of = [query.restriction.fingerprint(), repr(query.order_key)]
        terms = Conditional(request, [state.label], *terms_of)
        if terms.unchanged():
            return terms.not_modified(state.label, immutable=state.pinned)
        quotas.require_rows(request)
        if exporting:
            version = state.version if state.pinned else None
            exported = export_response(request, query, version, quotas.export_meter(request))
            label = exported.get("X-Data-Version", state.label)
            return terms.answer(exported, label, immutable=state.pinned)
        page = rows_page(query, state, files)
        quotas.charge_rows(request, len(page.results))
        if page.state.label != state.label:  # something landed while the page was read
            terms = Conditional(request, [page.state.label], *terms_of)
        body = Response(rows_body(request, query, page))
        # Immutable only where the request named the state (a version, a walk's cursor).
        return terms.answer(body, page.state.label, immutable=state.pinned)

    def _restriction(self):
        return Access.of(self.request).restriction(self._entry().name)

    def _row_query(self, entry):
        """The request's RowQuery; `cost_guard=off` from staff only (403 naming it)."""
        query = parse_row_query(
            entry, self.request.query_params, self._restriction(), self.request.user.pk
        )
        if not query.cost_guard and not Access.of(self.request).is_staff:
            raise AccessDenied("Only staff may pass `cost_guard=off`; remove it.")
        return query

    def _versioned(self):
        entry = self._entry()
        if not entry.versioning:
            raise Conflict(
                f"{entry.name!r} is not versioned: only its current state is kept.",
                code="versioning_disabled",
            )
        return entry

    @extend_schema(
        description="The versions of a versioned resource, newest first: what made each "
        "(`ingestion:42`, `repush:7`, ...) and how many rows it added and changed (null "
        "under a row filter: the counts are over every row). "
        "409 `versioning_disabled` where versioning is off.",
        parameters=[docs.NAME_PARAMETER, *docs.PAGE_PARAMETERS],
        responses={200: VersionSerializer(many=True), 409: ErrorSerializer},
        examples=[docs.VERSIONS_EXAMPLE],
        tags=["versions"],
    )
    @action(detail=True, methods=["get"])
    def versions(self, request, name=None):
        entry = self._versioned()
        reject_unknown_params(request, PAGING_PARAMS)
        state, restriction = snapshots.current(entry), self._restriction()
        terms = Conditional(request, [state.label], restriction.fingerprint())
        if terms.unchanged():
            return terms.not_modified(state.label)
        queryset = (
            Version.objects.using(replicas.read_alias())
            .filter(resource__name=entry.name)
            .order_by("-version")
        )
        paginator = PagePagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        hide_counts = restriction.rows is not None  # as the catalog's row_count
        body = VersionSerializer(page, many=True, context={"hide_counts": hide_counts}).data
        return terms.answer(paginator.get_paginated_response(body), state.label)

    @extend_schema(
        description="The records exactly as they were at version `n`, with the same "
        "parameters as `rows/`. Unknown `n`: 404; versioning off: 409.",
        parameters=[docs.NAME_PARAMETER, docs.VERSION_PARAMETER, *docs.ROWS_PARAMETERS[1:]],
        responses={
            **docs.rows_responses(RowsPageSerializer),
            400: RowsBadRequestSerializer,
            409: ErrorSerializer,
        },
        examples=[docs.ROWS_EXAMPLE, docs.ROWS_CSV_EXAMPLE, docs.QUERY_TOO_EXPENSIVE_EXAMPLE],
        tags=["versions"],
    )
    @action(
        detail=True,
        methods=["get"],
        url_path=r"versions/(?P<n>[0-9]+)/rows",
        renderer_classes=ROWS_RENDERERS,
    )
    def version_rows(self, request, name=None, n=None):
        entry = self._versioned()
        state = snapshots.at_version(entry, int(n)) if len(n) <= 9 else None
        if state is None:
            raise NotFound(f"{entry.name!r} has no version {n}.")
        query = self._row_query(entry)
        if query.walk is not None and query.walk != state.sealed():
            raise ValidationError({"cursor": [NOT_A_CURSOR]})  # a walk of another version
        return self._rows(request, query, state)

    @extend_schema(
        description="Who accessed this resource (needs `grant`): the stored requests that "
        "touched it, newest first, filtered by `user`, `since`, `until`.",
        parameters=[docs.NAME_PARAMETER, *docs.PAGE_PARAMETERS, *docs.ACCESS_LOG_PARAMETERS],
        responses=AccessLogSerializer(many=True),
        examples=[docs.ACCESS_LOG_EXAMPLE],
        tags=["audit"],
    )
    @action(detail=True, methods=["get"], url_path="access-log")
    def access_log(self, request, name=None):
        reject_unknown_params(request, set(AccessLogFilter.base_filters) | PAGING_PARAMS)
        # Other readers' query strings and paths carry values this grant may hide or mask.
        name = self._entry().name
        why = f"quote other readers' values of {name!r}"
        Access.of(request).require_unrestricted(name, "Access-log entries", why=why)
        flush_request_log()  # what this process still queues first
        queryset = RequestLog.objects.readable_by(request.user).filter(resource=name)
        filterset = AccessLogFilter(request.query_params, queryset=queryset)
        if not filterset.is_valid():
            raise ValidationError(filterset.errors)
        paginator = PagePagination()
        page = paginator.paginate_queryset(filterset.qs, request, view=self)
        return paginator.get_paginated_response(AccessLogSerializer(page, many=True).data)
