"""Running the real pipeline consumer in a thread, against the session's broker."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from django.db import connection

from ingestion.stream.consumer import PipelineConsumer
from ingestion.stream.kafka import reset_producer
from tests.support.polling import wait_until

JOIN_TIMEOUT = 90  # a consumer group join on the local broker can take ~20 s


@pytest.fixture
def topic(broker, settings):
    """A fresh pair of topics per test, so no test reads another's messages."""
    name = f"transactions.raw.{uuid.uuid4().hex[:8]}"
    settings.PIPELINE_TOPIC = name
    settings.PIPELINE_DLQ_TOPIC = f"{name}.dlq"
    settings.PIPELINE_GROUP = f"group-{name}"
    reset_producer()
    yield name
    reset_producer()


class RunningConsumer:
    """The pipeline consumer on its own thread (and its own database connection)."""

    def __init__(self, **options):
        self.consumer = PipelineConsumer(poll=0.2, **options)
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            self.consumer.run(should_stop=self.stop.is_set)
        except BaseException as exc:  # the thread's death is the test's business
            self.error = exc
        finally:
            connection.close()

    def __enter__(self):
        self.thread.start()
        wait_until(
            lambda: self.consumer.assigned or self.error,
            timeout=JOIN_TIMEOUT,
            what="partition assignment",
        )
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(30)


def produce(broker: str, topic: str, messages: list, headers=None) -> None:
    producer = Producer({"bootstrap.servers": broker})
    for message in messages:
        value = message if isinstance(message, (bytes, str)) else json.dumps(message)
        producer.produce(topic, value=value, headers=headers)
    assert producer.flush(15) == 0


def read_all(broker: str, topic: str, timeout: float = 15) -> list:
    """Every message of a topic, reading each partition directly (no group join)."""
    consumer = Consumer({"bootstrap.servers": broker, "group.id": "reader-" + uuid.uuid4().hex})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    messages, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            messages.append(message)
        elif message is None and messages:
            break
    consumer.close()
    return messages
