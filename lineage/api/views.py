"""The audit endpoint: the stored requests, newest first (staff only, read only)."""

from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import mixins, viewsets

from accounts.access import data_path
from accounts.access.permissions import StaffOnly
from lineage.api.serializers import RequestLogSerializer
from lineage.filters import RequestLogFilter
from lineage.models import RequestLog
from lineage.writer import flush

ENTRY = {
    "id": 981,
    "user": "alice",
    "at": "2026-11-23T10:00:00.123456Z",
    "method": "GET",
    "path": "/api/v1/resources/transactions/rows/",
    "query": {"country": "FR"},
    "body": None,
    "status_code": 200,
    "duration_ms": 4.2,
    "resource": "transactions",
    "ip": "127.0.0.1",
    "restrictions": None,
    "request_id": "4f1c2a9be0d34c7e8a51f0a3b2c6d7e9",
}


@extend_schema_view(
    list=extend_schema(
        description="Every request that reached `/api/` (refused, failed and anonymous ones "
        "too), newest first. Staff only. Secrets in bodies are stored as `***`. "
        "`request_id` is the request's `X-Request-ID`, as in the log lines it wrote.",
        examples=[
            OpenApiExample(
                "Stored requests",
                value={"count": 1, "next": None, "previous": None, "results": [ENTRY]},
                response_only=True,
            )
        ],
        tags=["audit"],
    ),
    retrieve=extend_schema(
        description="One stored request.",
        examples=[OpenApiExample("A stored request", value=ENTRY, response_only=True)],
        tags=["audit"],
    ),
)
@data_path("the request log of every resource: staff only")
class RequestLogViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = RequestLog.objects.all()
    serializer_class = RequestLogSerializer
    permission_classes = [StaffOnly]
    filterset_class = RequestLogFilter

    def get_queryset(self):
        flush()  # the entries this process still queues first: callers see their own requests
        return RequestLog.objects.readable_by(self.request.user)
