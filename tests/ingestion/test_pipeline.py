"""The live pipeline with the real broker, consumer and database."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from confluent_kafka import Producer
from django.db.models import Sum
from django.utils import timezone

from datalake.celery import app as celery_app
from datalake.models import Resource, Transaction
from ingestion.models import PipelineOffset, PipelineReject, RepushJob
from lineage.models import Version
from tests.support.factories import client_for, give, make_user
from tests.support.lake import tx
from tests.support.pipeline import RunningConsumer, produce, read_all
from tests.support.polling import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def current(**filters):
    return Transaction.objects.filter(valid_to__isnull=True, **filters)


def test_messages_flow_into_transactions_and_bad_ones_to_the_dlq(broker, topic):
    now = timezone.now().replace(microsecond=0)
    good = [tx(i, timestamp=now.isoformat()) for i in range(5)]
    produce(broker, topic, good)
    with RunningConsumer():
        wait_until(lambda: current().count() == 5, timeout=60, what="5 rows")
        produce(broker, topic, ["{not json", tx(50, quantity=0)])
        produce(broker, topic, [tx(51, timestamp=now.isoformat())])
        wait_until(
            lambda: current(transaction_id="TX-0051").exists(), timeout=60, what="the next good one"
        )
    assert sorted(current().values_list("transaction_id", flat=True)) == [
        *(f"TX-{i:04d}" for i in range(5)),
        "TX-0051",
    ]
    reasons = sorted(
        r.split(":")[0] for r in PipelineReject.objects.values_list("reason", flat=True)
    )
    assert reasons == ["bad_quantity", "invalid_json"]
    dead = read_all(broker, f"{topic}.dlq")
    assert b"{not json" in {m.value() for m in dead}
    assert {dict(m.headers())["reason"].split(b":")[0] for m in dead} == {
        b"invalid_json",
        b"bad_quantity",
    }
    assert Resource.objects.get(name="transactions").current_version >= 1


@pytest.fixture
def stored(db):
    """One transaction stored by an earlier ingestion (version 1)."""
    resource = Resource.objects.get(name="transactions")
    old = dt.datetime(2026, 11, 20, 13, 45, 12, tzinfo=dt.UTC)
    Transaction.objects.create(
        transaction_id="TX-R1", user_id="U1", timestamp=old, transaction_type="online",
        payment_method="card", country="FR", product_id="P1", quantity=2,
        amount=Decimal("59.90"), currency="EUR", amount_eur=Decimal("59.90"), status="completed",
    )  # fmt: skip
    Version.objects.create(resource=resource, version=1, source="ingestion:1", rows_added=1)
    Resource.objects.filter(pk=resource.pk).update(current_version=1)
    return old


def test_repush_one_is_processed_with_a_new_timestamp(broker, topic, stored, alice):
    api = client_for(alice)
    body = {"resource": "transactions", "transaction_id": "TX-R1"}
    assert api.post("/api/v1/pipeline/repush/", body, format="json").status_code == 403
    give(alice, "transactions", "write")
    give(alice, "transactions", "read")
    missing = api.post(
        "/api/v1/pipeline/repush/", {**body, "transaction_id": "nope"}, format="json"
    )
    assert missing.status_code == 404
    with RunningConsumer():
        response = api.post("/api/v1/pipeline/repush/", body, format="json")
        assert response.status_code == 202, response.json()
        pushed = response.json()
        assert pushed["status"] == "pushed" and pushed["topic"] == topic
        assert pushed["original_timestamp"] == "2026-11-20T13:45:12Z"
        url = f"/api/v1/pipeline/repush/{pushed['id']}/"
        done = wait_until(
            lambda: (r := api.get(url).json())["status"] == "processed" and r,
            timeout=60,
            what="processed",
        )
    assert done["version"] == 2 and done["processed_at"]
    assert done["row"]["timestamp"] == pushed["new_timestamp"]
    assert done["row"]["amount"] == "59.90"
    outsider = client_for(make_user("mallory"))
    assert outsider.get(url).status_code == 404  # another's re-push: not even its existence
    assert outsider.get("/api/v1/pipeline/repush/999999/").status_code == 404
    then = api.get("/api/v1/resources/transactions/versions/1/rows/").json()["results"]
    assert then[0]["timestamp"] == "2026-11-20T13:45:12Z"
    versions = api.get("/api/v1/resources/transactions/versions/").json()["results"]
    assert versions[0]["source"] == f"repush:{pushed['id']}"


def test_a_crash_between_the_database_commit_and_the_offset_commit(broker, topic):
    """Nothing duplicated, nothing lost: the consumer resumes from the database's offsets."""
    job = RepushJob.objects.create(total=10**6)  # counts every message it sees, exactly
    produce(broker, topic, [tx(i) for i in range(20)], headers=[("repush-job", str(job.pk))])

    def crash(batch):
        raise SystemExit("killed after the database commit, before Kafka's")

    first = RunningConsumer()
    first.consumer.after_db_commit = crash
    with first:
        wait_until(lambda: first.error is not None, timeout=60, what="the crash")
    merged = current().count()
    assert merged > 0
    produce(broker, topic, [tx(i) for i in range(20, 30)], headers=[("repush-job", str(job.pk))])
    with RunningConsumer():
        wait_until(
            lambda: current().count() == 30, timeout=90, what="every message after the restart"
        )
        job.refresh_from_db()
        wait_until(
            lambda: RepushJob.objects.get(pk=job.pk).processed == 30, timeout=30, what="the counts"
        )
    assert RepushJob.objects.get(pk=job.pk).processed == 30  # still, once the consumer stopped
    assert Transaction.objects.count() == 30  # no duplicate row versions either


def test_the_consumer_outlives_its_database_connection(broker, topic):
    """PostgreSQL restarted under it (here: its connection terminated): the consumer
    reconnects and merges the batch it holds, nothing skipped, nothing doubled."""
    from django.db import connection

    produce(broker, topic, [tx(i) for i in range(5)])
    running = RunningConsumer()
    with running:
        wait_until(lambda: current().count() == 5, timeout=60, what="the first 5 rows")
        with connection.cursor() as cursor:  # every other backend of the test database
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            assert cursor.fetchone()[0] >= 1
        produce(broker, topic, [tx(i) for i in range(5, 10)])
        wait_until(
            lambda: current().count() == 10 or running.error, timeout=60, what="the next 5 rows"
        )
        assert running.error is None, running.error
    assert current().count() == Transaction.objects.count() == 10


def test_offsets_of_another_life_of_the_topic_are_not_trusted(broker, topic):
    """The topic recreated, or the broker restarted without its log: its offsets start at
    0 again, below the stored ones. Its messages are read, not taken for merged ones;
    offsets stored for this topic (its id) are trusted as before."""
    produce(broker, topic, ["{}"])  # the topic exists, with its partitions
    PipelineOffset.objects.bulk_create(
        [PipelineOffset(topic=topic, partition=n, next_offset=1000, topic_id="gone") for n in
         range(8)]
    )  # fmt: skip
    produce(broker, topic, [tx(i) for i in range(5)])
    running = RunningConsumer()
    with running:
        wait_until(lambda: current().count() == 5, timeout=60, what="the 5 messages of the new log")
    assert PipelineReject.objects.count() == 1  # "{}" too: the whole new log was read
    ids = set(PipelineOffset.objects.filter(topic=topic).values_list("topic_id", flat=True))
    assert ids == {running.consumer.topic_id} and running.consumer.topic_id not in ("", "gone")

    produce(broker, topic, [tx(i) for i in range(5, 8)])
    with RunningConsumer():  # same topic, same id: resumes after what was merged
        wait_until(lambda: current().count() == 8, timeout=60, what="the next 3")
    assert Transaction.objects.count() == 8 and PipelineReject.objects.count() == 1


def test_repush_all_completes_with_every_record_processed(broker, topic, staff):
    rows = [
        Transaction(**{**tx(i), "timestamp": timezone.now(), "amount_eur": Decimal(10 + i)})
        for i in range(3000)
    ]
    Transaction.objects.bulk_create(rows)
    api = client_for(staff)
    celery_app.conf.task_always_eager = True
    try:
        with RunningConsumer():
            response = api.post(
                "/api/v1/pipeline/repush-all/", {"resource": "transactions"}, format="json"
            )
            assert response.status_code == 202
            url = f"/api/v1/pipeline/jobs/{response.json()['id']}/"
            job = wait_until(
                lambda: (j := api.get(url).json())["status"] == "completed" and j,
                timeout=120,
                what="the job",
            )
    finally:
        celery_app.conf.task_always_eager = False
    assert job["total"] == job["pushed"] == job["processed"] == 3000
    assert current().count() == 3000
    assert Transaction.objects.count() == 6000  # every record re-timestamped: a new version each


def test_a_broker_that_is_gone_fails_a_repush_quickly_and_a_new_producer_follows(
    broker, topic, stored, alice, settings
):
    """No broker at the address: the re-push answers `failed` within the delivery
    timeout (not a hung request), and the failed producer is replaced, so the broker
    back, the next re-push goes through (a producer left in a fatal state would not)."""
    import socket

    from ingestion.stream import kafka

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    working = settings.KAFKA_BOOTSTRAP_SERVERS
    settings.KAFKA_BOOTSTRAP_SERVERS = f"127.0.0.1:{port}"
    settings.KAFKA_DELIVERY_TIMEOUT_S = 1.0
    kafka.reset_producer()
    give(alice, "transactions", "write")
    api = client_for(alice)
    body = {"resource": "transactions", "transaction_id": "TX-R1"}
    failed = api.post("/api/v1/pipeline/repush/", body, format="json")
    assert failed.status_code == 503, failed.content
    # Ended by the delivery timeout (1 s here), not by a fixed wait: the broker's own
    # "message timed out" is the reason recorded.
    assert "timed out" in failed.json()["detail"].lower(), failed.json()["detail"]
    assert (failed.json()["status"], failed.json()["code"]) == ("failed", "broker_unavailable")
    assert kafka._producer is None  # discarded: the next re-push makes a new one

    settings.KAFKA_BOOTSTRAP_SERVERS = working
    ok = api.post("/api/v1/pipeline/repush/", body, format="json")
    assert ok.status_code == 202 and ok.json()["status"] == "pushed", ok.content


def test_a_repush_whose_message_never_arrived_is_sent_again(broker, topic, stored, alice):
    """Recorded `pushed` but its message never reached the consumer (the web died before
    sending it; a broker lost its log): beat sends it again and it is processed, with
    its new timestamp, once."""
    from ingestion.models import RepushRequest
    from ingestion.stream.repush import resend_stuck_repushes

    now = timezone.now().replace(microsecond=0)
    lost = RepushRequest.objects.create(
        transaction_id="TX-R1", original_timestamp=stored, new_timestamp=now, topic=topic
    )
    assert resend_stuck_repushes() == 0  # not old enough yet: it may still be on its way
    RepushRequest.objects.filter(pk=lost.pk).update(created_at=now - dt.timedelta(hours=1))
    with RunningConsumer():
        assert resend_stuck_repushes() == 1
        assert resend_stuck_repushes() == 0  # sent again just now: not twice in a row
        wait_until(
            lambda: RepushRequest.objects.get(pk=lost.pk).status == "succeeded",
            timeout=60,
            what="processed",
        )
    assert current(transaction_id="TX-R1").get().timestamp == now
    assert Transaction.objects.filter(transaction_id="TX-R1").count() == 2  # old + new version


def test_two_consumers_share_the_partitions_and_merge_side_by_side(broker, topic):
    """More consumers in the group: each merges its partitions' batches while the other
    merges its own, and the versions stay consistent. A record sent to two partitions
    (a producer that did not key by id) is neither lost nor doubled."""
    produce(broker, topic, [tx(0)])  # the topic exists, with its partitions
    with RunningConsumer(batch_size=50) as one, RunningConsumer(batch_size=50) as two:
        wait_until(
            lambda: one.consumer.assigned and two.consumer.assigned and one.consumer.partitions
            and two.consumer.partitions, timeout=90, what="both consumers assigned",
        )  # fmt: skip
        mine, theirs = sorted(one.consumer.partitions), sorted(two.consumer.partitions)
        producer = Producer({"bootstrap.servers": broker})
        for i in range(1, 601):
            part = (mine if i % 2 else theirs)[i % len(mine if i % 2 else theirs)]
            producer.produce(topic, value=json.dumps(tx(i)), partition=part)
            if i % 30 == 0:  # the same record, changed, on a partition of the other consumer
                part = (theirs if i % 2 else mine)[0]
                producer.produce(topic, value=json.dumps(tx(i, amount=999)), partition=part)
        assert producer.flush(15) == 0
        wait_until(
            lambda: PipelineOffset.objects.filter(topic=topic).aggregate(n=Sum("next_offset"))["n"]
            == 1 + 600 + 20 or one.error or two.error, timeout=120, what="every message merged",
        )  # fmt: skip
        assert one.error is None and two.error is None
        assert one.consumer.batches > 1 and two.consumer.batches > 1
    assert current().count() == 601
    assert Transaction.objects.count() == 601 + 20  # each record sent twice: two versions
    for i in range(30, 601, 30):
        history = list(
            Transaction.objects.filter(transaction_id=f"TX-{i:04d}").order_by("valid_from")
        )
        assert history[0].valid_to == history[1].valid_from and history[1].valid_to is None
        assert {history[0].amount, history[1].amount} == {Decimal(10 + i), Decimal(999)}
    # Every version, read as of its number, holds the rows of the versions before it.
    total = 0
    for version in Version.objects.filter(resource__name="transactions").order_by("version"):
        total += version.rows_added
        as_of = Transaction.objects.filter(valid_from__lte=version.version).exclude(
            valid_to__lte=version.version
        )
        assert as_of.count() == total, version.version
    assert total == 601
