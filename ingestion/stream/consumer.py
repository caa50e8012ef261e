"""The live pipeline: a consumer of `transactions.raw` that merges micro-batches.

Each batch is validated exactly like the daily job (`ingestion.validation`), and
merged into `transactions` as a new version in ONE database transaction that
also stores the rejects, the re-push outcomes and, per partition, the next offset
to read. On (re)assignment the consumer seeks to the offsets stored in the
database, so a crash at any point — before or after the Kafka commit — neither
loses nor duplicates a message; Kafka's own committed offsets only follow (for
lag monitoring). Invalid messages also go to `transactions.dlq` (at least once).
Several consumers in one group share the partitions and merge their batches side by
side (`merge_transaction_rows(..., concurrent=True)`: versions still become current in
their order).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from confluent_kafka import (
    OFFSET_INVALID,
    Consumer,
    KafkaException,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from datalake.lake.merge import MergeConflict, MergeResult, merge_transaction_rows
from datalake.platform import replicas
from datalake.platform.db import vacuum_stale
from datalake.runs.models import RunStatus
from ingestion.models import PipelineOffset, PipelineReject, RepushJob, RepushRequest
from ingestion.rates import RateTable
from ingestion.stream.kafka import ensure_topics, producer
from ingestion.validation import validate_transaction

logger = logging.getLogger(__name__)
RATES_TTL = 60.0
DB_RETRY_MAX_S = 10.0  # the longest wait between two tries while the database is away
# Deadlock, serialization failure: a concurrent consumer's transaction, not an outage.
RETRY_AT_ONCE = {"40P01", "40001"}


@dataclass
class Batch:
    """A validated batch: rows by id (last message wins), rejects, re-push outcomes."""

    rows: dict = field(default_factory=dict)
    rejects: list = field(default_factory=list)
    repush_ok: dict = field(default_factory=dict)  # repush id -> transaction id
    repush_failed: dict = field(default_factory=dict)  # repush id -> reason
    jobs: dict = field(default_factory=dict)  # job id -> [processed, failed]
    next_offsets: dict = field(default_factory=dict)  # (topic, partition) -> next offset


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _headers(message) -> dict[str, str]:
    return {k: (v or b"").decode() for k, v in (message.headers() or [])}


class PipelineConsumer:
    def __init__(self, *, group: str | None = None, batch_size: int = 50_000, poll: float = 0.5):
        self.topic = settings.PIPELINE_TOPIC
        self.batch_size = batch_size
        self.poll = poll
        self.consumer = Consumer(
            {
                "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
                "group.id": group or settings.PIPELINE_GROUP,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 10_000,
                "max.poll.interval.ms": 600_000,
                "logger": logger,  # librdkafka's own lines too, as log records (JSON)
            }
        )
        self.admin = AdminClient({"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS})
        self.topic_id = ""  # the broker's id of the topic, read at each assignment
        self._rates: tuple[float, RateTable] | None = None
        self.assigned = False
        self.partitions: set[int] = set()  # those assigned to this consumer now
        self.batches = 0  # merged by this consumer
        self.after_db_commit = None  # a hook for fault-injection tests

    # -- assignment -------------------------------------------------------------------

    def _on_assign(self, consumer, partitions):
        self.topic_id = self._topic_id()
        stored = self._until_stored(self._stored_offsets)
        for p in partitions:
            p.offset = stored.get((p.topic, p.partition), OFFSET_INVALID)
        consumer.assign(partitions)
        self.partitions = {p.partition for p in partitions}
        self.assigned = True
        logger.info("pipeline: assigned %s", [(p.partition, p.offset) for p in partitions])

    def _topic_id(self) -> str:
        """The broker's id of the topic ('' if it cannot tell)."""
        try:
            found = self.admin.describe_topics(TopicCollection([self.topic]))[self.topic]
            return str(found.result(timeout=10).topic_id or "")
        except Exception as exc:  # an old broker, a timeout: offsets are trusted as stored
            logger.warning("pipeline: the id of %s is unknown (%s)", self.topic, exc)
            return ""

    def _stored_offsets(self) -> dict:
        """The stored offsets, unless they are those of another life of the topic.

        A topic recreated, or a broker that lost its log (a restarted in-memory broker),
        numbers its messages from 0 again: offsets stored for the old one would make
        the consumer take the new messages for merged ones and skip them. Then the
        offsets start over at 0, and the rows say so.
        """
        with transaction.atomic():
            rows = list(PipelineOffset.objects.select_for_update().filter(topic=self.topic))
            other = {o.topic_id for o in rows if o.topic_id and o.topic_id != self.topic_id}
            if self.topic_id and other:
                logger.error(
                    "pipeline: %s is not the topic its offsets were stored for (id %s, "
                    "stored for %s): it was recreated or the broker lost its log; reading it "
                    "from its start", self.topic, self.topic_id, ", ".join(sorted(other)),
                )  # fmt: skip
                PipelineOffset.objects.filter(topic=self.topic).update(
                    next_offset=0, topic_id=self.topic_id
                )
                return {(o.topic, o.partition): 0 for o in rows}  # not the group's commits
            return {(o.topic, o.partition): o.next_offset for o in rows}

    def _on_revoke(self, consumer, partitions):
        self.assigned = False
        self.partitions = set()

    def start(self) -> None:
        ensure_topics()  # a subscription to a missing topic waits for a metadata refresh
        self.consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)

    # -- the loop -----------------------------------------------------------------------

    def run(self, should_stop=lambda: False) -> None:
        self.start()
        try:
            while not should_stop():
                self.step()
        finally:
            self.consumer.close()

    def step(self) -> int:
        """Consume one batch (up to batch_size messages) and merge it; returns its size."""
        messages = self.consumer.consume(num_messages=self.batch_size, timeout=self.poll)
        messages = [m for m in messages if m.error() is None]
        if not messages:
            return 0
        batch = self._until_stored(lambda: self.merge(messages))
        self.batches += 1
        try:
            vacuum_stale(every=30.0)  # the aggregates each batch updates
        except (OperationalError, InterfaceError):
            connection.close()  # after the commit: the next batch tries again
        if self.after_db_commit:
            self.after_db_commit(batch)
        offsets = [TopicPartition(t, p, o) for (t, p), o in batch.next_offsets.items()]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:  # the broker restarted, the group is rejoining...
            # The database holds the offsets that count (stored with the batch); Kafka's
            # only follow, for lag. A reassignment seeks to the database's: nothing lost.
            logger.warning("pipeline: Kafka offset commit failed (%s); continuing", exc)
        return len(messages)

    def _until_stored(self, work):
        """`work()` (one transaction), tried again while the database cannot be reached.

        The messages of a batch are consumed, so a batch that failed on a lost connection
        (PostgreSQL restarted, a failover) is merged again, not skipped: the transaction
        rolled back, and the merge is idempotent by the stored offsets. So is, at once, a
        batch that another consumer's batch got in the way of (the same record in both:
        MergeConflict, or a deadlock PostgreSQL broke). Other errors are bugs and stop
        the consumer (its supervisor restarts it; nothing is lost).
        """
        delay = 0.2
        while True:
            try:
                return work()
            except MergeConflict as exc:  # rolled back: merged again on top of the other's
                logger.info("pipeline: %s; merging the batch again", exc)
                continue
            except (OperationalError, InterfaceError) as exc:
                if getattr(exc.__cause__, "sqlstate", None) in RETRY_AT_ONCE:
                    # Two consumers' batches sharing a transaction id, each waiting for
                    # the other: PostgreSQL rolled one back; it is merged again.
                    logger.info("pipeline: %s; merging the batch again", _first_line(exc))
                    continue
                logger.warning(
                    "pipeline: database unavailable (%s); the batch again in %.1f s",
                    _first_line(exc),
                    delay,
                )
            connection.close()  # Django opens a new one on the next query
            time.sleep(delay)
            delay = min(delay * 2, DB_RETRY_MAX_S)

    # -- validation ---------------------------------------------------------------------

    def rates(self) -> RateTable:
        if self._rates is None or time.monotonic() - self._rates[0] > RATES_TTL:
            self._rates = (time.monotonic(), RateTable.from_database())
        return self._rates[1]

    def validate(self, messages, stored: dict) -> Batch:
        """Validate the messages not merged yet (offset at or past the stored one)."""
        batch, rates = Batch(), self.rates()
        for message in messages:
            key = (message.topic(), message.partition())
            batch.next_offsets[key] = max(batch.next_offsets.get(key, 0), message.offset() + 1)
            if message.offset() < stored.get(key, 0):
                continue  # merged before a crash that came ahead of Kafka's commit
            headers = _headers(message)
            raw = message.value() or b""
            row, reason = validate_transaction(raw, rates)
            job = headers.get("repush-job")
            if job:
                counts = batch.jobs.setdefault(int(job), [0, 0])
                counts[0 if row else 1] += 1
            if row is None:
                batch.rejects.append((message, raw.decode("utf-8", "replace"), reason))
                if headers.get("repush-id"):
                    batch.repush_failed[int(headers["repush-id"])] = reason
                continue
            row["line"] = message.offset()
            batch.rows[row["transaction_id"]] = row
            if headers.get("repush-id"):
                batch.repush_ok[int(headers["repush-id"])] = row["transaction_id"]
        return batch

    # -- the one transaction ----------------------------------------------------------

    def merge(self, messages) -> Batch:
        """Validate and merge in one transaction with the rejects, outcomes and offsets."""
        partitions = sorted({m.partition() for m in messages})
        with transaction.atomic():
            # This batch's partitions only: the group's other consumers merge theirs
            # meanwhile. Locked: a partition moving between two consumers is merged by
            # one at a time, and the second sees what the first stored.
            stored = {
                (o.topic, o.partition): o.next_offset
                for o in PipelineOffset.objects.select_for_update()
                .filter(topic=self.topic, partition__in=partitions)
                .order_by("partition")
            }
            batch = self.validate(messages, stored)
            self._dead_letters(batch)
            version = self._merge_rows(batch).version if batch.rows else None
            self._record(batch, version)
        return batch

    def _merge_rows(self, batch: Batch) -> MergeResult:
        return merge_transaction_rows(
            batch.rows.values(), self._version_source(batch), concurrent=True
        )

    def _version_source(self, batch: Batch) -> str:
        if len(batch.repush_ok) == 1 and not batch.jobs:
            return f"repush:{next(iter(batch.repush_ok))}"
        if batch.jobs:
            return "repush-all:" + ",".join(str(j) for j in sorted(batch.jobs))
        return f"pipeline:{self.topic}"

    def _record(self, batch: Batch, version: int | None) -> None:
        now = timezone.now()
        PipelineReject.objects.bulk_create(
            [
                PipelineReject(
                    topic=m.topic(),
                    partition=m.partition(),
                    offset=m.offset(),
                    raw=raw,
                    reason=reason,
                )
                for m, raw, reason in batch.rejects
            ],
            ignore_conflicts=True,
        )
        requesters = set()  # their next reads see these re-pushes (datalake.platform.replicas)
        if batch.repush_ok:
            done = RepushRequest.objects.filter(pk__in=batch.repush_ok)
            done.update(status=RunStatus.SUCCEEDED, finished_at=now, version=version)
            requesters.update(done.values_list("requested_by_id", flat=True))
        for pk, reason in batch.repush_failed.items():
            RepushRequest.objects.filter(pk=pk).update(
                status=RunStatus.FAILED, finished_at=now, error=reason
            )
        for job, (processed, failed) in batch.jobs.items():
            RepushJob.objects.filter(pk=job).update(
                processed=F("processed") + processed, failed=F("failed") + failed
            )
            completed = RepushJob.objects.filter(
                pk=job,
                status=RunStatus.RUNNING,
                pushed=F("total"),
                processed__gte=F("total") - F("failed"),
            ).update(status=RunStatus.SUCCEEDED, finished_at=now)
            if completed:
                requesters.update(
                    RepushJob.objects.filter(pk=job).values_list("requested_by_id", flat=True)
                )
        replicas.wrote(*requesters)
        for (topic, partition), next_offset in batch.next_offsets.items():
            PipelineOffset.objects.update_or_create(
                topic=topic,
                partition=partition,
                defaults={"next_offset": next_offset, "topic_id": self.topic_id},
            )

    def _dead_letters(self, batch: Batch) -> None:
        if not batch.rejects:
            return
        p = producer()
        for message, _raw, reason in batch.rejects:
            p.produce(
                settings.PIPELINE_DLQ_TOPIC,
                value=message.value(),
                key=message.key(),
                headers=[
                    ("reason", reason.encode()),
                    (
                        "source",
                        f"{message.topic()}/{message.partition()}/{message.offset()}".encode(),
                    ),
                ],
            )
        p.flush(15)
