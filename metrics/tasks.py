"""Celery tasks of reports: thin, they take an id and call the service."""

from celery import shared_task
from django.conf import settings


@shared_task(bind=True, acks_late=True, name="reports.run", time_limit=settings.REPORT_TIMEOUT - 60)
def run_report(self, report_id: int) -> str:
    from .services import report_execute

    return report_execute(report_id, task_id=self.request.id or "").status


@shared_task(name="reports.expire_stale")
def expire_stale_reports() -> int:
    from .services import expire_stale_reports as expire

    return expire()
