"""The Celery application: Redis broker, JSON only, late acks and prefetch 1."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "datalake.settings")

app = Celery("datalake")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
