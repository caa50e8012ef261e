"""Celery tasks of the project package (autodiscovered): the runs' beat job."""

from datalake.runs.tasks import recover_stalled  # noqa: F401
