"""The Celery side of runs: `RunTask`, the base class of every run kind's task, and
`runs.recover_stalled`, the one beat job that recovers every kind's stalled runs.

Like Read the Docs' `BuildTaskBase`, the task class owns the run's transitions around
the body: the body (a kind's `*_execute` service, callable without Celery) claims the
run through `lifecycle.execute`, so a redelivered message does nothing twice; the hooks
here cover what happens outside the body:

- `RunBusy` (a live attempt holds the run): retried after the kind's stall time, once
  that attempt has finished or been given up for dead;
- `on_failure` (an exception escaped the body, or the worker's hard time limit killed
  it): the run this task's id holds fails, with the reason;
- `run_model` names the kind ("app_label.Model"); `acks_late` and
  `reject_on_worker_lost`: a message is only gone once a run ended.
"""

from __future__ import annotations

import logging

from celery import Task, shared_task
from django.apps import apps
from django.utils import timezone

from accounts.access import serves_no_data
from datalake.runs.lifecycle import RunBusy, error_text
from datalake.runs.models import RunStatus, run_models

logger = logging.getLogger(__name__)


class RunTask(Task):
    run_model = ""  # "app_label.Model" of the runs it executes (first argument: ids)
    acks_late = True
    reject_on_worker_lost = True

    @property
    def model(self):
        return apps.get_model(self.run_model)

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except RunBusy as busy:
            countdown = self.model.stall_seconds()
            raise self.retry(exc=busy, countdown=countdown, max_retries=None) from busy

    def run_ids(self, args) -> list[int]:
        first = args[0] if args else None
        return list(first) if isinstance(first, (list, tuple)) else [first]

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        """The body did not end the run (an exception escaped it, a hard time limit):
        the runs this task holds fail with the reason."""
        if not self.run_model or not task_id:
            return
        failed = self.model.objects.filter(
            pk__in=self.run_ids(args), task_id=task_id, status=RunStatus.RUNNING
        ).update(status=RunStatus.FAILED, error=error_text(exc), finished_at=timezone.now())
        if failed:
            logger.warning("Task %s %s failed: %s runs failed with it", self.name, task_id, failed)


@shared_task(name="runs.recover_stalled")
@serves_no_data("housekeeping: recovers the runs whose worker died, by each kind's policy")
def recover_stalled() -> dict[str, list[int]]:
    """Beat: every kind's runs whose worker died, recovered by the kind's policy (queued
    again, failed, or the kind's own recovery). A kind that fails is logged; the
    others still run."""
    recovered = {}
    for model in run_models():
        try:
            ids = model.recover_stalled()
        except Exception:
            logger.exception("Recovering stalled %s runs failed", model._meta.label)
            continue
        if ids:
            recovered[model._meta.label] = ids
    return recovered
