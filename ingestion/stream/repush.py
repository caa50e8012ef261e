"""Re-pushing stored transactions to the start of the pipeline, with a new timestamp."""

from __future__ import annotations

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from datalake.errors import Conflict, Invalid, NotFound
from datalake.models import Transaction
from datalake.models.lake import TRANSACTION_FIELDS
from datalake.runs import lifecycle
from datalake.runs.models import RunStatus
from ingestion.models import RepushJob, RepushRequest
from ingestion.stream.kafka import DeliveryFailed, discard_producer, produce_and_wait, producer

MESSAGE_FIELDS = list(TRANSACTION_FIELDS)
PUSH_BATCH = 5_000


def check_resource(resource: str) -> None:
    if resource != "transactions":
        raise Invalid({"resource": ["Only `transactions` flows through the pipeline."]})


def as_message(record: dict, timestamp=None) -> bytes:
    """The record as DATA.md's JSON object (original amount and currency), re-timestamped."""
    body = {name: record[name] for name in MESSAGE_FIELDS}
    if timestamp is not None:
        body["timestamp"] = timestamp
    body["timestamp"] = body["timestamp"].isoformat().replace("+00:00", "Z")
    body["amount"] = str(body["amount"])
    return orjson.dumps(body)


def repush_one(*, resource: str, transaction_id: str, requested_by=None) -> RepushRequest:
    """Send the current version of one transaction to `transactions.raw`, now-stamped.

    The message carries a `repush-id` header; the consumer marks the request
    succeeded (`processed` on the wire, with the version it made) in the transaction
    that merges it. It is `running` (`pushed`) from the moment it is recorded.
    """
    check_resource(resource)
    record = (
        Transaction.objects.filter(transaction_id=transaction_id, valid_to__isnull=True)
        .values(*MESSAGE_FIELDS)
        .first()
    )
    if record is None:
        raise NotFound(f"No current transaction {transaction_id!r}.")
    now = timezone.now()
    request = RepushRequest.objects.create(
        resource=resource,
        transaction_id=transaction_id,
        original_timestamp=record["timestamp"],
        new_timestamp=now,
        topic=settings.PIPELINE_TOPIC,
        requested_by=requested_by,
        status=RunStatus.RUNNING,
        started_at=now,
        attempts=1,
    )
    try:
        _send(request, record)
    except DeliveryFailed as exc:
        RepushRequest.objects.filter(pk=request.pk, status=RunStatus.RUNNING).update(
            status=RunStatus.FAILED, error=f"The broker refused it: {exc}", finished_at=now
        )
        request.refresh_from_db()
    return request


def _send(request: RepushRequest, record: dict) -> None:
    produce_and_wait(
        request.topic,
        as_message(record, request.new_timestamp),
        key=request.transaction_id,
        headers=[("repush-id", str(request.pk).encode())],
    )


def resend_stuck_repushes(limit: int = 1000) -> int:
    """How many re-pushes `resend_stuck` sent again (or failed)."""
    return len(resend_stuck(limit))


def resend_stuck(limit: int = 1000) -> list[int]:
    """Send again the re-pushes still `pushed` REPUSH_RESEND_AFTER_S after they were sent
    (the re-push kind's stall policy, `RepushRequest.stalled`); the ids sent or failed.

    Their message never reached the consumer: the web process died between recording
    the request and sending it, or the broker lost its log (a restarted in-memory dev
    broker). Sent with the same id and new timestamp: a message that was only late
    makes no second version (a merge changes only the rows that differ), and the
    request is marked processed either way. The broker still down: next time.
    """
    stuck = RepushRequest.stalled().order_by("id")[:limit]
    sent = []
    for request in stuck:
        record = (
            Transaction.objects.filter(transaction_id=request.transaction_id, valid_to__isnull=True)
            .values(*MESSAGE_FIELDS)
            .first()
        )
        if record is None:  # deleted since: nothing to send, and say so
            RepushRequest.objects.active().filter(pk=request.pk).update(
                status=RunStatus.FAILED, error="No current transaction to send again.",
                finished_at=timezone.now(),
            )  # fmt: skip
            sent.append(request.pk)
            continue
        try:
            _send(request, record)
        except DeliveryFailed:
            break
        now = timezone.now()
        RepushRequest.objects.active().filter(pk=request.pk).update(
            status=RunStatus.RUNNING, resent_at=now, attempts=F("attempts") + 1,
            started_at=Coalesce("started_at", Value(now)),
        )  # fmt: skip
        sent.append(request.pk)
    return sent


@transaction.atomic
def repush_all_start(*, resource: str, retimestamp: bool = True, requested_by=None) -> RepushJob:
    """Queue a re-push of every current record; 409 `repush_all_running` while another
    job is `running` (each streams the whole table to the broker: one at a time).

    An advisory lock, held until this transaction ends, makes the check and the insert
    one step: two requests at once cannot both find no job running."""
    check_resource(resource)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('ingestion.repush_all'))")
    running = RepushJob.objects.active().order_by("id").first()
    if running is not None:
        raise Conflict(
            f"Re-push-all job {running.pk} is still running; one runs at a time. Poll "
            f"/api/v1/pipeline/jobs/{running.pk}/ until it ends.",
            code="repush_all_running",
        )
    job = RepushJob.objects.create(
        resource=resource, retimestamp=retimestamp, requested_by=requested_by
    )
    from ingestion.tasks import run_repush_all

    transaction.on_commit(lambda: run_repush_all.delay(job.pk))
    return job


def repush_all_execute(job_id: int, task_id: str = "") -> RepushJob:
    """Stream every current record to the topic in batches, never the whole table in memory.

    A server-side cursor reads a consistent snapshot; `pushed` grows per batch. The job
    is claimed once, from `queued` (datalake/runs/): a redelivered message finds it
    running or finished and does nothing. A worker that dies while streaming stops the
    heartbeat, and the beat job fails the job (its stall policy); the user starts
    another. Once every record is on the topic the job stays `running` until the
    consumer has merged them all; its heartbeat stops (nothing left to lose).
    """
    job = RepushJob.objects.get(pk=job_id)
    if not lifecycle.claim(job, task_id):
        return job
    try:
        with lifecycle.Heartbeat(RepushJob) as heartbeat:
            heartbeat.hold(job)
            _stream(job)
    except Exception as exc:
        lifecycle.fail(job, str(exc)[:2000])
        raise
    RepushJob.objects.filter(pk=job.pk, claim=job.claim).update(heartbeat_at=None)
    _complete_if_done(job.pk)
    job.refresh_from_db()
    return job


def _stream(job: RepushJob) -> None:
    current = Transaction.objects.filter(valid_to__isnull=True)
    stamp = job.created_at if job.retimestamp else None
    lifecycle.update(job, total=current.count(), pushed=0, processed=0, failed=0)
    headers = [("repush-job", str(job.pk).encode())]
    p, pushed = producer(), 0
    try:
        for record in current.order_by().values(*MESSAGE_FIELDS).iterator(chunk_size=PUSH_BATCH):
            p.produce(
                settings.PIPELINE_TOPIC,
                as_message(record, stamp),
                key=record["transaction_id"],
                headers=headers,
            )
            pushed += 1
            if pushed % PUSH_BATCH == 0:
                _flush(p, job, pushed)
        _flush(p, job, pushed)
    except Exception:
        discard_producer(p)  # it may be left unusable (a broker restart): the next gets a new one
        raise


def _flush(p, job: RepushJob, pushed: int) -> None:
    if p.flush(60):
        raise DeliveryFailed("the broker did not acknowledge the batch in time")
    RepushJob.objects.filter(pk=job.pk).update(pushed=pushed)


def _complete_if_done(job_id: int) -> None:
    RepushJob.objects.filter(
        pk=job_id,
        status=RunStatus.RUNNING,
        pushed=F("total"),
        processed__gte=F("total") - F("failed"),
    ).update(status=RunStatus.SUCCEEDED, finished_at=timezone.now())
