"""Celery tasks of reports: thin, they take an id and call the service."""

from celery import shared_task
from django.conf import settings

from accounts.access import data_path, serves_no_data


@shared_task(bind=True, acks_late=True, name="reports.run", time_limit=settings.REPORT_TIMEOUT - 60)
@data_path("the report type's `resources`, with the requester's privileges")
def run_report(self, report_id: int) -> str:
    from metrics.reports.services import report_execute

    return report_execute(report_id, task_id=self.request.id or "").status


@shared_task(name="reports.expire_stale")
@serves_no_data("housekeeping: ends the reports whose worker died as `error`")
def expire_stale_reports() -> int:
    from metrics.reports.services import expire_stale_reports as expire

    return expire()


# A training past this many seconds fails (SoftTimeLimitExceeded ends it as `failed`).
TRAINING_TIMEOUT = settings.ML_TRAINING_TIMEOUT


@shared_task(
    bind=True, acks_late=True, reject_on_worker_lost=True, name="ml.train",
    soft_time_limit=TRAINING_TIMEOUT, time_limit=TRAINING_TIMEOUT + 60,
)  # fmt: skip
@data_path("the model's resource, with the requester's privileges")
def run_training(self, training_id: int) -> str:
    """Idempotent: a finished training is left alone, a redelivered one starts over."""
    from metrics.ml.services import training_execute

    return training_execute(training_id, task_id=self.request.id or "").status
