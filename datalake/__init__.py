"""The data-lake portal project: settings, URLs, the Celery app, the catalog and the query API."""

from datalake.celery import app as celery_app

__all__ = ("celery_app",)
