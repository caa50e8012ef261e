"""Celery tasks of reports and trainings: thin, they take an id and call the service
(which claims the run); `RunTask` (datalake/runs/) fails a run whose task died."""

from celery import shared_task
from django.conf import settings

from accounts.access import data_path, serves_no_data
from datalake.runs.tasks import RunTask


@shared_task(
    bind=True, base=RunTask, run_model="metrics.Report", name="reports.run",
    time_limit=settings.REPORT_TIMEOUT - 60,
)  # fmt: skip
@data_path("the report type's `resources`, with the requester's privileges")
def run_report(self, report_id: int) -> str:
    from metrics.reports.services import report_execute

    return report_execute(report_id, task_id=self.request.id or "").status


@shared_task(name="reports.expire_stale")
@serves_no_data("housekeeping: ends the reports whose worker died as `error`")
def expire_stale_reports() -> int:
    """Kept registered for messages already queued; beat runs `runs.recover_stalled`."""
    from metrics.reports.services import expire_stale_reports as expire

    return expire()


# A training past this many seconds fails (SoftTimeLimitExceeded ends it as `failed`).
TRAINING_TIMEOUT = settings.ML_TRAINING_TIMEOUT


@shared_task(
    bind=True, base=RunTask, run_model="metrics.Training", name="ml.train",
    soft_time_limit=TRAINING_TIMEOUT, time_limit=TRAINING_TIMEOUT + 60,
)  # fmt: skip
@data_path("the model's resource, with the requester's privileges")
def run_training(self, training_id: int) -> str:
    """Idempotent: a finished training is left alone, one whose worker died starts over."""
    from metrics.ml.services import training_execute

    return training_execute(training_id, task_id=self.request.id or "").status
