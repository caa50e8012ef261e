"""Pipeline endpoints: re-push one transaction or all of them, and follow them."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import Access, data_path
from datalake.api.strict import StrictSerializer
from datalake.runs.models import RunStatus
from datalake.runs.serializers import RunStatusField, wire_words
from ingestion import selectors
from ingestion.models import RepushJob, RepushRequest
from ingestion.stream import repush


def require(request, resource: str, privilege: str) -> None:
    access = Access.of(request)
    access.require(privilege, resource)
    if privilege == "write":
        access.require_unmasked_writer(resource)


def id_parameter(what: str) -> OpenApiParameter:
    return OpenApiParameter(
        "id", OpenApiTypes.INT, OpenApiParameter.PATH, description=f"The {what}'s id."
    )


def requested_resource(request) -> str:
    body = request.data if isinstance(request.data, dict) else {}
    return str(body.get("resource") or "transactions")[:100]


class RepushCreateSerializer(StrictSerializer):
    resource = serializers.CharField(default="transactions", help_text="`transactions`.")
    transaction_id = serializers.CharField(
        max_length=64, help_text="The id of a current transaction, e.g. `TX-20261120-000123`."
    )


class RepushAllCreateSerializer(StrictSerializer):
    resource = serializers.CharField(default="transactions", help_text="`transactions`.")
    retimestamp = serializers.BooleanField(
        default=True, help_text="Give every record the re-push time (default) or keep its own."
    )


# A re-push's status on the wire (API.md): `pushed` while its message is on the topic,
# then `processed` (merged) or `failed`.
REPUSH_WORDS = {
    RunStatus.QUEUED: "pushed",
    RunStatus.RUNNING: "pushed",
    RunStatus.SUCCEEDED: "processed",
    RunStatus.FAILED: "failed",
}
REPUSH_STATUSES = wire_words(REPUSH_WORDS)  # the OpenAPI enum (ENUM_NAME_OVERRIDES)

# A re-push-all job's: `running` until the pipeline merged every record, `completed`.
JOB_WORDS = {
    RunStatus.QUEUED: "running",
    RunStatus.RUNNING: "running",
    RunStatus.SUCCEEDED: "completed",
    RunStatus.FAILED: "failed",
}
JOB_STATUSES = wire_words(JOB_WORDS)


class RepushSerializer(serializers.ModelSerializer):
    status = RunStatusField(
        REPUSH_WORDS, help_text="`pushed` (on the topic), then `processed` (merged) or `failed`."
    )
    processed_at = serializers.DateTimeField(
        source="finished_at", read_only=True, allow_null=True,
        help_text="When the pipeline merged it; null until then.",
    )  # fmt: skip
    url = serializers.HyperlinkedIdentityField(
        view_name="pipeline-repush-detail", help_text="This re-push, to poll its status."
    )
    row = serializers.SerializerMethodField(
        help_text="The record as now stored (when processed), under your restriction: hidden "
        "columns absent, masked ones as pseudonyms, null outside your row filter."
    )
    original_timestamp = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="The record's timestamp before the re-push; null where your grant hides it.",
    )

    class Meta:
        model = RepushRequest
        fields = [
            "id",
            "url",
            "resource",
            "status",
            "transaction_id",
            "original_timestamp",
            "new_timestamp",
            "topic",
            "processed_at",
            "version",
            "error",
            "row",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "id": {"help_text": "The re-push's id."},
            "resource": {"help_text": "The resource re-pushed to (`transactions`)."},
            "transaction_id": {"help_text": "The transaction re-pushed."},
            "new_timestamp": {"help_text": "The timestamp it was given: the time of the re-push."},
            "topic": {"help_text": "The Kafka topic the message was sent to."},
            "version": {"help_text": "The table version that holds it; null until processed."},
            "error": {"help_text": "Why it failed; empty otherwise."},
        }

    def to_representation(self, instance):
        """`original_timestamp` is data of the record: null where the reader may not see it."""
        body = super().to_representation(instance)
        request = self.context["request"]
        if not selectors.repush_shows_original(instance, Access.of(request)):
            body["original_timestamp"] = None
        return body

    def get_row(self, obj) -> dict | None:
        if obj.status != RunStatus.SUCCEEDED:
            return None
        request = self.context["request"]
        fields = [*repush.MESSAGE_FIELDS, "amount_eur"]
        return selectors.repush_row(obj, fields, Access.of(request))


class RepushJobSerializer(serializers.ModelSerializer):
    status = RunStatusField(JOB_WORDS, help_text="`running`, then `completed` or `failed`.")
    url = serializers.HyperlinkedIdentityField(
        view_name="pipeline-job-detail", help_text="This job, to poll its progress."
    )

    class Meta:
        model = RepushJob
        fields = [
            "id",
            "url",
            "resource",
            "status",
            "retimestamp",
            "total",
            "pushed",
            "processed",
            "failed",
            "error",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "id": {"help_text": "The job's id."},
            "resource": {"help_text": "The resource re-pushed (`transactions`)."},
            "retimestamp": {
                "help_text": "Whether each record got the re-push time as its timestamp."
            },
            "total": {
                "allow_null": True,
                "help_text": "Current records to re-push; null under a row filter.",
            },
            "pushed": {
                "allow_null": True,
                "help_text": "Records sent to the topic so far; null under a row filter.",
            },
            "processed": {
                "allow_null": True,
                "help_text": "Records the pipeline merged so far; null under a row filter.",
            },
            "failed": {
                "allow_null": True,
                "help_text": "Records the pipeline could not merge; null under a row filter.",
            },
            "error": {"help_text": "Why the job failed; empty otherwise."},
            "created_at": {"help_text": "When the job was requested."},
            "finished_at": {"help_text": "When it ended; null while running."},
        }

    def to_representation(self, instance):
        """The counts are over every current row of the table: null to a reader whose
        row filter hides some (the catalog's `row_count`, runs and versions alike)."""
        body = super().to_representation(instance)
        request = self.context["request"]
        if Access.of(request).restriction(instance.resource).rows is not None:
            body.update(dict.fromkeys(JOB_COUNTS))
        return body


JOB_COUNTS = ("total", "pushed", "processed", "failed")


REPUSH_EXAMPLE = {
    "id": 7,
    "url": "http://localhost:8000/api/v1/pipeline/repush/7/",
    "resource": "transactions",
    "status": "processed",
    "transaction_id": "TX-20261120-000123",
    "original_timestamp": "2026-11-20T13:45:12Z",
    "new_timestamp": "2026-11-23T09:00:00.120000Z",
    "topic": "transactions.raw",
    "processed_at": "2026-11-23T09:00:00.610000Z",
    "version": 9,
    "error": "",
    "row": {"transaction_id": "TX-20261120-000123", "timestamp": "2026-11-23T09:00:00.120000Z"},
}
JOB_EXAMPLE = {
    "id": 3,
    "url": "http://localhost:8000/api/v1/pipeline/jobs/3/",
    "resource": "transactions",
    "status": "running",
    "retimestamp": True,
    "total": 10000,
    "pushed": 5000,
    "processed": 4200,
    "failed": 0,
    "error": "",
    "created_at": "2026-11-23T09:00:00Z",
    "finished_at": None,
}


@data_path("the `resource` of the body (`write`; the record it re-pushes)")
class RepushView(APIView):
    @extend_schema(
        operation_id="pipeline_repush_create",
        description="Re-push one stored transaction to the start of the pipeline "
        "(`transactions.raw`) with the time of the re-push as its timestamp. Needs `write`. "
        "202; follow it at `url` until `processed`. Unknown transaction: 404. The broker "
        "down or refusing it (no acknowledgement within `KAFKA_DELIVERY_TIMEOUT_S`): 503 "
        "`broker_unavailable` with the re-push, recorded as `failed`; nothing was sent.",
        request=RepushCreateSerializer,
        responses={202: RepushSerializer, 503: OpenApiTypes.OBJECT},
        examples=[
            OpenApiExample(
                "Re-push one",
                value={"resource": "transactions", "transaction_id": "TX-20261120-000123"},
                request_only=True,
            ),
            OpenApiExample(
                "Pushed",
                value={**REPUSH_EXAMPLE, "status": "pushed", "processed_at": None, "row": None},
                response_only=True,
                status_codes=["202"],
            ),
        ],
        tags=["pipeline"],
    )
    def post(self, request):
        require(request, requested_resource(request), "write")  # before any validation
        data = RepushCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        created = repush.repush_one(requested_by=request.user, **data.validated_data)
        body = RepushSerializer(created, context={"request": request}).data
        if created.status == RunStatus.FAILED:  # the broker is down or refused it
            body = {**body, "detail": created.error, "code": "broker_unavailable"}
            return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(body, status=status.HTTP_202_ACCEPTED)


@data_path("the re-push's `resource` (`read`); the requester's own re-pushes")
class RepushDetailView(APIView):
    @extend_schema(
        operation_id="pipeline_repush_retrieve",
        description="A re-push: `pushed`, `processed` (with the version it produced and the "
        "record as now stored, under your restriction on the resource: null outside your "
        "row filter) or `failed` (with `error`). Yours only (staff: any); another's is a "
        "404. Needs `read` on the resource.",
        responses=RepushSerializer,
        parameters=[id_parameter("re-push")],
        examples=[OpenApiExample("Processed", value=REPUSH_EXAMPLE, response_only=True)],
        tags=["pipeline"],
    )
    def get(self, request, pk: int):
        obj = get_object_or_404(RepushRequest.objects.readable_by(request.user), pk=pk)
        require(request, obj.resource, "read")
        return Response(RepushSerializer(obj, context={"request": request}).data)


@data_path("the `resource` of the body (`write`; every record re-pushed)")
class RepushAllView(APIView):
    @extend_schema(
        operation_id="pipeline_repush_all_create",
        description="Re-push every current record of the resource, in batches, from a "
        "background job. Needs `write`. 202 with the job; follow it at `url`. One job "
        "runs at a time: 409 `repush_all_running` (naming it) while one is `running`.",
        request=RepushAllCreateSerializer,
        responses={202: RepushJobSerializer},
        examples=[
            OpenApiExample("Re-push all", value={"resource": "transactions"}, request_only=True),
            OpenApiExample("Started", value=JOB_EXAMPLE, response_only=True, status_codes=["202"]),
        ],
        tags=["pipeline"],
    )
    def post(self, request):
        require(request, requested_resource(request), "write")  # before any validation
        data = RepushAllCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = repush.repush_all_start(requested_by=request.user, **data.validated_data)
        body = RepushJobSerializer(job, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED)


@data_path("the job's `resource` (`read`); the requester's own jobs")
class RepushJobView(APIView):
    @extend_schema(
        operation_id="pipeline_jobs_retrieve",
        description="A re-push-all job: `running`, `completed` or `failed`, with `total`, "
        "`pushed` and `processed`. Yours only (staff: any); another's is a 404. Needs "
        "`read` on the resource.",
        responses=RepushJobSerializer,
        parameters=[id_parameter("job")],
        examples=[OpenApiExample("A job", value=JOB_EXAMPLE, response_only=True)],
        tags=["pipeline"],
    )
    def get(self, request, pk: int):
        job = get_object_or_404(RepushJob.objects.readable_by(request.user), pk=pk)
        require(request, job.resource, "read")
        return Response(RepushJobSerializer(job, context={"request": request}).data)
