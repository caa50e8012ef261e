"""The Celery application: Redis broker, JSON only, late acks and prefetch 1."""

import os

from celery import Celery
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "datalake.settings")

app = Celery("datalake")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect(weak=False)
def _django_logging(**kwargs):
    """Worker and beat log through settings.LOGGING (JSON lines, task ids), not Celery's own."""
    from .logging import configure_celery_logging

    configure_celery_logging(**kwargs)
