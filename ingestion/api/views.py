"""Ingestion runs: start one, follow it, read its rejects."""

from __future__ import annotations

import django_filters as df
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.access import Access, data_path
from datalake.api.pagination import PagePagination
from datalake.lake.merge import MAIN_TABLE
from ingestion import selectors
from ingestion.api.serializers import (
    IngestionRunCreateSerializer,
    IngestionRunSerializer,
    RejectSerializer,
)
from ingestion.daily import services
from ingestion.models import IngestionRun, RunStatus

RUN_EXAMPLE = {
    "id": 42,
    "url": "http://localhost:8000/api/v1/ingestion/runs/42/",
    "source": "transactions",
    "path": "landing/transactions/2026-11-20.jsonl",
    "status": "succeeded",
    "rows_read": 10012,
    "rows_loaded": 10000,
    "rows_rejected": 12,
    "rows_added": 9997,
    "rows_changed": 3,
    "version": 7,
    "progress": {"phase": "done"},
    "spark_master": "spark://spark-master:7077",
    "spark_executors": 2,
    "checksum": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "created_at": "2026-11-21T02:00:00Z",
    "started_at": "2026-11-21T02:00:01Z",
    "finished_at": "2026-11-21T02:00:19Z",
    "error": "",
    "rejects_url": "http://localhost:8000/api/v1/ingestion/runs/42/rejects/",
}


def table_of(source: str) -> str:
    return MAIN_TABLE[source]


class RunFilter(df.FilterSet):
    source = df.CharFilter(help_text="Source name, e.g. `transactions`.")
    status = df.ChoiceFilter(choices=RunStatus.choices, help_text="Run status.")

    class Meta:
        model = IngestionRun
        fields = []


@extend_schema_view(
    list=extend_schema(
        description="Ingestion runs of the sources whose table you can read, newest first.",
        examples=[
            OpenApiExample(
                "Runs",
                value={"count": 1, "next": None, "previous": None, "results": [RUN_EXAMPLE]},
                response_only=True,
            )
        ],
        tags=["ingestion"],
    ),
    retrieve=extend_schema(
        description="One run, with its progress while it runs.",
        examples=[OpenApiExample("A run", value=RUN_EXAMPLE, response_only=True)],
        tags=["ingestion"],
    ),
)
@data_path("the source's table (`read` to list and see runs, `write` to start one)")
class IngestionRunViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = IngestionRunSerializer
    filterset_class = RunFilter
    queryset = IngestionRun.objects.none()

    def get_queryset(self):
        return IngestionRun.objects.readable_by(self.request.user)

    def get_serializer_context(self):
        limits = selectors.restricted_sources(Access.of(self.request))
        return {**super().get_serializer_context(), "limits": limits}

    @extend_schema(
        description="Ingest one file of a source (`path` relative to the lake root). Needs "
        "`write` on the source's table. 202 with the queued run; the same file again is "
        "a `skipped` run.",
        request=IngestionRunCreateSerializer,
        responses={202: IngestionRunSerializer},
        examples=[
            OpenApiExample(
                "Ingest a day",
                value={"source": "transactions", "path": "landing/transactions/2026-11-20.jsonl"},
                request_only=True,
            ),
            OpenApiExample(
                "Queued",
                value={**RUN_EXAMPLE, "status": "queued"},
                response_only=True,
                status_codes=["202"],
            ),
        ],
        tags=["ingestion"],
    )
    def create(self, request):
        data = IngestionRunCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        table = table_of(data.validated_data["source"])
        access = Access.of(request)
        access.require("write", table)
        access.require_unmasked_writer(table)
        run = services.ingestion_run_start(requested_by=request.user, **data.validated_data)
        body = IngestionRunSerializer(run, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        description="The lines of a run that were rejected, under your restriction on the "
        "source's table: line number, the source's `fields` read from the line (row filter, "
        "column list and masks applied as to rows: under a row filter, a line whose fields "
        "could not be read is not shown), and the `reason` (its code only under a "
        "restriction, or where the table has only part of the source's fields). `raw`, the "
        "line itself, only to an unrestricted reader of the raw-file resource `raw_<source>`; "
        "else null.",
        responses=RejectSerializer(many=True),
        examples=[
            OpenApiExample(
                "Rejects",
                value={
                    "count": 1,
                    "next": None,
                    "previous": None,
                    "results": [
                        {
                            "line": 17,
                            "raw": '{"transaction_id": "TX-1", "quantity": 0}',
                            "fields": {"transaction_id": "TX-1", "quantity": 0},
                            "reason": "bad_quantity: quantity must be 1 or more, got 0",
                        }
                    ],
                },
                response_only=True,
            )
        ],
        tags=["ingestion"],
    )
    @action(detail=True, methods=["get"], filter_backends=[])
    def rejects(self, request, pk=None):
        run = self.get_object()
        shape = selectors.reject_shape(run, Access.of(request))
        paginator = PagePagination()
        page = paginator.paginate_queryset(selectors.run_rejects(run, shape), request, view=self)
        body = [selectors.reject_body(reject, shape) for reject in page]
        return paginator.get_paginated_response(RejectSerializer(body, many=True).data)
