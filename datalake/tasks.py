"""Celery tasks of the project package (autodiscovered): the runs' and sharing's beat jobs."""

from datalake.runs.tasks import recover_stalled  # noqa: F401
from datalake.sharing.tasks import drop_unreachable  # noqa: F401
