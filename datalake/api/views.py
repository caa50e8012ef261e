"""The catalog and the generic query API: `/api/v1/resources/...`."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.response import Response

from accounts.selectors import has_privilege

from . import docs
from .grammar import parse_row_query
from .pagination import PagePagination
from .rows import rows_page
from .selectors import all_resources, describe_resources, resource_entry
from .serializers import ResourceSerializer, RowsPageSerializer


class ResourceViewSet(viewsets.ViewSet):
    """Every resource of the lake: PostgreSQL tables and folders of raw files."""

    lookup_field = "name"
    lookup_value_regex = r"[A-Za-z0-9_\-]+"
    pagination_class = None

    def _entry(self, name: str):
        entry = resource_entry(name)
        if entry is None:
            raise NotFound(f"No resource named {name!r}; GET /api/v1/resources/ lists them.")
        return entry

    def _require(self, entry, privilege: str) -> None:
        if not has_privilege(self.request.user, entry.name, privilege):
            raise PermissionDenied(f"You need `{privilege}` on {entry.name!r}.")

    @extend_schema(
        description="Every resource of the lake (tables and raw-file folders) with its columns, "
        "filter operators, versioning, row count and the caller's privileges.",
        responses=ResourceSerializer(many=True),
        parameters=docs.PAGE_PARAMETERS,
        examples=[docs.RESOURCE_EXAMPLE_LIST],
        tags=["catalog"],
    )
    def list(self, request):
        paginator = PagePagination()
        page = paginator.paginate_queryset(all_resources(), request, view=self)
        return paginator.get_paginated_response(describe_resources(request, page))

    @extend_schema(
        description="One resource of the catalog.",
        parameters=[docs.NAME_PARAMETER],
        responses=ResourceSerializer,
        examples=[docs.RESOURCE_EXAMPLE],
        tags=["catalog"],
    )
    def retrieve(self, request, name=None):
        return Response(describe_resources(request, [self._entry(name)])[0])

    @extend_schema(
        description=docs.ROWS_DESCRIPTION,
        parameters=docs.ROWS_PARAMETERS,
        responses=RowsPageSerializer,
        examples=[docs.ROWS_EXAMPLE],
        tags=["catalog"],
    )
    @action(detail=True, methods=["get"])
    def rows(self, request, name=None):
        entry = self._entry(name)
        self._require(entry, "read")
        query = parse_row_query(entry, request.query_params)
        return Response(rows_page(query, request))
