"""Re-pushing stored transactions to the start of the pipeline, with a new timestamp."""

from __future__ import annotations

import datetime as dt

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from datalake.errors import Conflict, Invalid, NotFound
from datalake.models import Transaction
from datalake.models.lake import TRANSACTION_FIELDS
from ingestion.models import JobStatus, RepushJob, RepushRequest, RepushStatus
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
    `processed` (with the version it made) in the transaction that merges it.
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
    )
    try:
        _send(request, record)
    except DeliveryFailed as exc:
        request.status, request.error = RepushStatus.FAILED, f"The broker refused it: {exc}"
        request.save(update_fields=["status", "error"])
    return request


def _send(request: RepushRequest, record: dict) -> None:
    produce_and_wait(
        request.topic,
        as_message(record, request.new_timestamp),
        key=request.transaction_id,
        headers=[("repush-id", str(request.pk).encode())],
    )


def resend_stuck_repushes(limit: int = 1000) -> int:
    """Send again the re-pushes still `pushed` REPUSH_RESEND_AFTER_S after they were sent.

    Their message never reached the consumer: the web process died between recording
    the request and sending it, or the broker lost its log (a restarted in-memory dev
    broker). Sent with the same id and new timestamp: a message that was only late
    makes no second version (a merge changes only the rows that differ), and the
    request is marked processed either way. The broker still down: next time.
    """
    cutoff = timezone.now() - dt.timedelta(seconds=settings.REPUSH_RESEND_AFTER_S)
    stuck = (
        RepushRequest.objects.filter(status=RepushStatus.PUSHED, created_at__lt=cutoff)
        .filter(Q(resent_at__isnull=True) | Q(resent_at__lt=cutoff))
        .order_by("id")[:limit]
    )
    sent = 0
    for request in stuck:
        record = (
            Transaction.objects.filter(transaction_id=request.transaction_id, valid_to__isnull=True)
            .values(*MESSAGE_FIELDS)
            .first()
        )
        if record is None:  # deleted since: nothing to send, and say so
            RepushRequest.objects.filter(pk=request.pk, status=RepushStatus.PUSHED).update(
                status=RepushStatus.FAILED, error="No current transaction to send again."
            )
            continue
        try:
            _send(request, record)
        except DeliveryFailed:
            break
        RepushRequest.objects.filter(pk=request.pk).update(resent_at=timezone.now())
        sent += 1
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
    running = RepushJob.objects.filter(status=JobStatus.RUNNING).order_by("id").first()
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

    A server-side cursor reads a consistent snapshot; `pushed` grows per batch.
    Re-running a job (after a crash) starts the stream again: the consumer's merge
    leaves identical records unchanged, so nothing is duplicated.
    """
    job = RepushJob.objects.get(pk=job_id)
    if job.status != JobStatus.RUNNING:
        return job
    current = Transaction.objects.filter(valid_to__isnull=True)
    stamp = job.created_at if job.retimestamp else None
    RepushJob.objects.filter(pk=job.pk).update(
        total=current.count(), pushed=0, processed=0, failed=0, task_id=task_id
    )
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
        _complete_if_done(job.pk)
    except Exception as exc:
        discard_producer(p)  # it may be left unusable (a broker restart): the next gets a new one
        RepushJob.objects.filter(pk=job.pk).update(
            status=JobStatus.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
        raise
    job.refresh_from_db()
    return job


def _flush(p, job: RepushJob, pushed: int) -> None:
    if p.flush(60):
        raise DeliveryFailed("the broker did not acknowledge the batch in time")
    RepushJob.objects.filter(pk=job.pk).update(pushed=pushed)


def _complete_if_done(job_id: int) -> None:
    from django.db.models import F

    RepushJob.objects.filter(
        pk=job_id,
        status=JobStatus.RUNNING,
        pushed=F("total"),
        processed__gte=F("total") - F("failed"),
    ).update(status=JobStatus.COMPLETED, finished_at=timezone.now())
