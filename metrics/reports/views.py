"""Reports: one generic endpoint, a registry of types, status polling, the result."""

from __future__ import annotations

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from accounts.access import Access, data_path
from datalake.api.errors import Conflict
from datalake.api.pagination import PagePagination
from datalake.api.strict import StrictSerializer
from datalake.runs.models import RunStatus
from datalake.runs.serializers import RunStatusField, wire_words
from metrics.models import Report
from metrics.reports import REGISTRY, services
from metrics.reports.schema import params_json_schema


class ReportCreateSerializer(StrictSerializer):
    report_name = serializers.CharField(help_text="A name from `GET /api/v1/reports/types/`.")
    params = serializers.JSONField(default=dict, help_text="The report's parameters.")


# A report's status on the wire (API.md): `running` until it ends, `completed` or `error`.
REPORT_WORDS = {
    RunStatus.QUEUED: "running",
    RunStatus.RUNNING: "running",
    RunStatus.SUCCEEDED: "completed",
    RunStatus.FAILED: "error",
}
REPORT_STATUSES = wire_words(REPORT_WORDS)  # the OpenAPI enum (ENUM_NAME_OVERRIDES)


class ReportSerializer(serializers.ModelSerializer):
    status = RunStatusField(REPORT_WORDS, help_text="`running`, then `completed` or `error`.")
    report_date = serializers.DateTimeField(
        source="created_at", read_only=True, help_text="When it was requested."
    )
    url = serializers.HyperlinkedIdentityField(
        view_name="report-detail", help_text="This report, to poll its status."
    )
    result_url = serializers.SerializerMethodField(
        help_text="The result rows, paginated; null until `completed`."
    )
    csv_url = serializers.SerializerMethodField(
        help_text="The whole result as CSV; null until `completed`."
    )
    page_url = serializers.SerializerMethodField(help_text="A page with a chart, for people.")

    class Meta:
        model = Report
        fields = [
            "id",
            "url",
            "report_name",
            "params",
            "status",
            "error",
            "report_date",
            "started_at",
            "finished_at",
            "row_count",
            "result_url",
            "csv_url",
            "page_url",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "id": {"help_text": "The report's id."},
            "report_name": {"help_text": "Its type, from `GET /api/v1/reports/types/`."},
            "params": {"help_text": "The parameters it was asked with."},
            "error": {"help_text": "Why it ended in `error`; empty otherwise."},
            "started_at": {"help_text": "When a worker started it; null until then."},
            "finished_at": {"help_text": "When it ended; null until then."},
            "row_count": {"help_text": "Rows of the result; null until `completed`."},
        }

    def _link(self, obj, path: str) -> str | None:
        if obj.status != RunStatus.SUCCEEDED:
            return None
        return self.context["request"].build_absolute_uri(path)

    def get_result_url(self, obj) -> str | None:
        return self._link(obj, f"/api/v1/reports/{obj.pk}/result/")

    def get_csv_url(self, obj) -> str | None:
        return self._link(obj, f"/api/v1/reports/{obj.pk}/result.csv")

    def get_page_url(self, obj) -> str | None:
        return self._link(obj, f"/reports/{obj.pk}/")


REPORT_EXAMPLE = {
    "id": 5,
    "url": "http://localhost:8000/api/v1/reports/5/",
    "report_name": "spend-per-country",
    "params": {"since": "2026-11-01", "until": "2026-11-20", "exclude": ["US"]},
    "status": "completed",
    "error": "",
    "report_date": "2026-11-23T10:00:00Z",
    "started_at": "2026-11-23T10:00:00.2Z",
    "finished_at": "2026-11-23T10:00:01Z",
    "row_count": 11,
    "result_url": "http://localhost:8000/api/v1/reports/5/result/",
    "csv_url": "http://localhost:8000/api/v1/reports/5/result.csv",
    "page_url": "http://localhost:8000/reports/5/",
}


ID = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="Report id.")


@extend_schema_view(
    list=extend_schema(
        description="Your reports (staff: all), newest first.",
        examples=[
            OpenApiExample(
                "Reports",
                value={"count": 1, "next": None, "previous": None, "results": [REPORT_EXAMPLE]},
                response_only=True,
            )
        ],
        tags=["reports"],
    ),
    retrieve=extend_schema(
        description="A report's status: `running`, `completed` (with `result_url`) or "
        "`error` (with `error`).",
        parameters=[ID],
        examples=[OpenApiExample("Completed", value=REPORT_EXAMPLE, response_only=True)],
        tags=["reports"],
    ),
)
@data_path(
    "the requester's own reports; a result: the report type's `resources` (`read`, unrestricted)",
    no_data={"types": "the report types and their parameters: code, no data"},
)
class ReportViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ReportSerializer
    queryset = Report.objects.none()
    filter_backends = []

    def get_queryset(self):
        services.expire_stale_reports()  # a dead worker's report ends as `error`, not forever
        return Report.objects.readable_by(self.request.user)

    @extend_schema(
        description="Run a report in the background. 202 with its `url` to poll. Unknown "
        "report or bad params: 400; a resource it reads that you cannot read: 403; "
        "`REPORTS_MAX_RUNNING_PER_USER` of yours already running: 429 "
        "`too_many_running_reports`.",
        request=ReportCreateSerializer,
        responses={202: ReportSerializer},
        examples=[
            OpenApiExample(
                "Spend per country",
                value={
                    "report_name": "spend-per-country",
                    "params": {"since": "2026-11-01", "until": "2026-11-20", "exclude": ["US"]},
                },
                request_only=True,
            ),
            OpenApiExample(
                "Running",
                value={**REPORT_EXAMPLE, "status": "running", "result_url": None},
                response_only=True,
                status_codes=["202"],
            ),
        ],
        tags=["reports"],
    )
    def create(self, request):
        data = ReportCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        report = services.report_start(requested_by=request.user, **data.validated_data)
        body = ReportSerializer(report, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        description="The report types: `report_name`, `description`, `params` (JSON Schema).",
        responses={200: dict},
        examples=[
            OpenApiExample(
                "Types",
                value=[
                    {
                        "report_name": "spend-per-country",
                        "description": "Money spent per country, largest first.",
                        "params": {"type": "object", "properties": {"since": {"type": "string"}}},
                    }
                ],
                response_only=True,
            )
        ],
        tags=["reports"],
    )
    @action(detail=False, methods=["get"], pagination_class=None)
    def types(self, request):
        return Response(
            [
                {"report_name": name, "description": cls.description,
                 "params": params_json_schema(cls.Params)}
                for name, cls in sorted(REGISTRY.items())
            ]
        )  # fmt: skip

    def _completed(self) -> Report:
        report = self.get_object()
        if report.status != RunStatus.SUCCEEDED:
            raise Conflict(
                f"The report is {REPORT_WORDS.get(report.status, report.status)}; poll its url "
                "until `completed`.",
                code="report_not_ready",
            )
        services.refuse_result(Access.of(self.request), report)
        return report

    @extend_schema(
        description="The result rows, paginated (each page one index range read). Not "
        "completed yet: 409 `report_not_ready`.",
        parameters=[ID],
        responses={200: dict},
        examples=[
            OpenApiExample(
                "Rows",
                value={
                    "count": 11,
                    "next": None,
                    "previous": None,
                    "results": [{"country": "FR", "total_eur": "51234.10"}],
                },
                response_only=True,
            )
        ],
        tags=["reports"],
    )
    @action(detail=True, methods=["get"])
    def result(self, request, pk=None):
        report = self._completed()
        paginator = PagePagination()
        size = paginator.get_page_size(request)
        page = _page_number(request)
        first = (page - 1) * size + 1
        rows = list(
            report.rows.filter(n__gte=first, n__lt=first + size)
            .order_by("n")
            .values_list("data", flat=True)
        )
        from metrics.api.views import paginator_response

        return paginator_response(request, paginator, rows, report.row_count or 0, page, size)

    @extend_schema(
        description="The whole result as CSV (`text/csv`).",
        parameters=[ID],
        responses={(200, "text/csv"): OpenApiTypes.STR},
        examples=[
            OpenApiExample(
                "CSV",
                value="country,total_eur\nFR,51234.10\n",
                response_only=True,
                media_type="text/csv",
            )
        ],
        tags=["reports"],
    )
    def result_csv(self, request, pk=None):  # routed in urls.py: `.../result.csv`, no slash
        from django.conf import settings

        report = self._completed()
        path = settings.LAKE_ROOT / report.result_path
        if not path.is_file():
            raise NotFound("The result file is gone from the lake.")
        return FileResponse(
            open(path, "rb"),
            content_type="text/csv",
            as_attachment=True,
            filename=f"report-{report.pk}-{report.report_name}.csv",
        )


def _page_number(request) -> int:
    from rest_framework.exceptions import ValidationError

    raw = request.query_params.get("page", "1")
    if not raw.isdigit() or int(raw) < 1:
        raise ValidationError({"page": ["Must be a whole number of 1 or more."]})
    return int(raw)
