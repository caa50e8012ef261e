"""The Celery application: Redis broker, JSON only, late acks and prefetch 1."""

import os

from celery import Celery
from celery.signals import setup_logging, worker_process_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "datalake.settings")


def _guard_detached_redis_channels() -> None:
    """A channel left open on a transport its connection already let go of fails as a
    connection error, not an AttributeError that kills the worker.

    kombu 5.7.0: when the worker's broker connection breaks (Redis restarted), the
    transport can be detached from its connection (``transport.client = None``) while
    one of its channels still holds delivered, unacknowledged messages. Closing that
    channel then restores them through a new pool built from ``transport.client``:
    ``AttributeError: 'NoneType' object has no attribute 'hostname'`` in
    ``Channel._connparams``, which no connection-error handler catches, and the worker
    process exits. Raised as redis' ``ConnectionError`` instead, it is one of the
    transport's connection errors: the cleanup that called it ignores it, the consumer
    reconnects, and the messages stay in Redis' unacked set until ``restore_visible``
    returns them after the visibility timeout (the same path as after a dead worker;
    our tasks are idempotent, ingestion runs are claimed).
    """
    import redis
    from kombu.transport import redis as kombu_redis

    original = kombu_redis.Channel._connparams
    if getattr(original, "detached_guard", False):
        return

    def _connparams(self, asynchronous=False):
        transport = self.connection
        if transport is None or transport.client is None:
            raise redis.exceptions.ConnectionError(
                "broker connection closed: this channel's transport was released"
            )
        return original(self, asynchronous=asynchronous)

    _connparams.detached_guard = True
    kombu_redis.Channel._connparams = _connparams


_guard_detached_redis_channels()

app = Celery("datalake")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect(weak=False)
def _django_logging(**kwargs):
    """Worker and beat log through settings.LOGGING (JSON lines, task ids), not Celery's own."""
    from datalake.platform.logging import configure_celery_logging

    configure_celery_logging(**kwargs)


@worker_process_shutdown.connect(weak=False)
def _stop_spark_driver(**kwargs):
    """A pool child ends without atexit (os._exit): its resident Spark driver ends its
    session first (ingestion/daily/spark.py), its private folder removed."""
    from ingestion.daily.spark import stop_resident_driver

    stop_resident_driver(blocking=False)
