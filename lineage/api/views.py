"""The audit endpoints: the stored requests, newest first, and the verification of their
chain (staff only, read only)."""

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import mixins, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import data_path, serves_no_data
from accounts.access.permissions import StaffOnly
from datalake.api.filtering import reject_unknown_params
from lineage.api.serializers import RequestLogSerializer, VerifyParams, VerifySerializer
from lineage.chain import keys, verify
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


VERIFIED = {
    "ok": False,
    "complete": True,
    "verified_through": 41_207,
    "anchored_through": 41_190,
    "start": 0,
    "rows": 48_310,
    "checkpoints": 5_120,
    "redacted": 1,
    "findings": [
        {
            "kind": "hash_mismatch",
            "sequence": 41_208,
            "request_id": "4f1c2a9be0d34c7e8a51f0a3b2c6d7e9",
            "detail": "request 981 differs from what was sealed (its columns or body were changed)",
        }
    ],
    "findings_total": 1,
    "unsealed": 12,
    "oldest_unsealed_seconds": 1.8,
}


@serves_no_data("the audit chain's verification: counts, sequences and request ids, staff only")
class AuditVerifyView(APIView):
    permission_classes = [StaffOnly]

    @extend_schema(
        operation_id="audit_verify",
        description="Recompute the audit chain (docs/AUDIT.md) from its trusted start (the "
        "genesis, a retention cut, or the newest checkpoint at or before `since`) up to the "
        "first checkpoint at or after `until`, against the stored seals and the signed "
        "checkpoints kept outside the database. `ok` is true when nothing was found; each "
        "finding names its `kind`, the `sequence`, the request's `request_id` when it is "
        "still there, and what was found. Requests stored after the last sealing round are "
        "not in the chain yet (`unsealed`). Staff only; at most `AUDIT_VERIFY_MAX_ROWS` "
        "seals a call (`complete` false beyond: go on with `since` or `manage.py "
        "verify_audit`). Not proven: requests deleted before their first seal (a round is "
        "every few seconds), and anything a writer of the checkpoint folder removes with "
        "its checkpoints (production keeps them on object-locked storage): docs/AUDIT.md.",
        parameters=[VerifyParams],
        responses=VerifySerializer,
        examples=[OpenApiExample("A changed request", value=VERIFIED, response_only=True)],
        tags=["audit"],
    )
    def get(self, request):
        reject_unknown_params(request, {"since", "until", "format"})
        params = VerifyParams(data=request.query_params)
        params.is_valid(raise_exception=True)
        flush()  # this process's own queued entries are stored (not sealed) first
        report = verify.database(
            since=params.validated_data.get("since"),
            until=params.validated_data.get("until"),
            verifying=keys.verifying_keys(),
            max_rows=settings.AUDIT_VERIFY_MAX_ROWS,
        )
        waiting = verify.unsealed()
        oldest = waiting["oldest_at"]
        return Response(
            report.as_dict()
            | {
                "unsealed": waiting["count"],
                "oldest_unsealed_seconds": (timezone.now() - oldest).total_seconds()
                if oldest
                else None,
            }
        )
