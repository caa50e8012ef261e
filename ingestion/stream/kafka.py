"""Kafka plumbing of the pipeline: topics, a shared producer, the admin client."""

from __future__ import annotations

import threading

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from django.conf import settings

_producer: Producer | None = None
_lock = threading.Lock()


def producer() -> Producer:
    """One idempotent producer per process (thread-safe in librdkafka)."""
    global _producer
    with _lock:
        if _producer is None:
            _producer = Producer(
                {
                    "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 5,
                    "message.timeout.ms": int(settings.KAFKA_DELIVERY_TIMEOUT_S * 1000),
                }
            )
        return _producer


def reset_producer() -> None:
    """Forget the producer (the bootstrap servers changed, e.g. in tests)."""
    global _producer
    with _lock:
        if _producer is not None:
            _producer.flush(5)
        _producer = None


class DeliveryFailed(Exception):
    pass


def produce_and_wait(topic: str, value: bytes, key: str | None = None, headers=None) -> None:
    """Produce one message and wait until the broker has it; DeliveryFailed otherwise
    (within KAFKA_DELIVERY_TIMEOUT_S)."""
    errors = []
    p = producer()
    try:
        p.produce(topic, value=value, key=key, headers=headers, on_delivery=_collect(errors))
    except (KafkaException, BufferError) as exc:
        discard_producer(p)
        raise DeliveryFailed(str(exc)) from exc
    remaining = p.flush(settings.KAFKA_DELIVERY_TIMEOUT_S + 1)
    if errors or remaining:
        discard_producer(p)
        raise DeliveryFailed(str(errors[0]) if errors else "the broker did not acknowledge in time")


def discard_producer(p: Producer) -> None:
    """Replace a producer that failed a delivery: after a broker restart an idempotent
    producer can be left in a fatal state (its producer id unknown to the new broker),
    and every later message would fail too. The next call makes a new one."""
    global _producer
    with _lock:
        if _producer is p:
            _producer = None
    p.purge()  # what it still holds fails now (delivery callbacks), not later
    p.flush(0)


def _collect(errors: list):
    def on_delivery(error, message):
        if error is not None:
            errors.append(error)

    return on_delivery


def ensure_topics() -> None:
    """Create the pipeline's topics if missing (Apache Kafka in compose does not auto-create)."""
    admin = AdminClient({"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS})
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [settings.PIPELINE_TOPIC, settings.PIPELINE_DLQ_TOPIC]
    new = [
        NewTopic(t, num_partitions=settings.PIPELINE_PARTITIONS)
        for t in wanted
        if t not in existing
    ]
    for future in admin.create_topics(new).values() if new else ():
        try:
            future.result(10)
        except Exception as exc:  # already created by another consumer, or auto-created
            if "TOPIC_ALREADY_EXISTS" not in str(exc).upper():
                raise
