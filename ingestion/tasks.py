"""Celery tasks of ingestion: thin, they take an id and call the service (which claims
the run); `RunTask` (datalake/runs/) retries a run a live attempt holds and fails the
runs of a task that died."""

from __future__ import annotations

from celery import shared_task

from datalake.runs.tasks import RunTask
from ingestion.daily.services import ingestion_runs_execute, recover_stalled_runs


@shared_task(bind=True, base=RunTask, run_model="ingestion.IngestionRun", name="ingestion.run")
def run_ingestion(self, run_id: int) -> str:
    return _execute(self, [run_id])[0]


@shared_task(
    bind=True, base=RunTask, run_model="ingestion.IngestionRun", name="ingestion.run_batch"
)
def run_ingestion_batch(self, run_ids: list[int]) -> list[str]:
    """Runs that must happen in order (rates first, days in date order); the files of one
    source share a Spark job, each merged as soon as it is staged.

    A run held by a live attempt elsewhere (this message redelivered while that attempt
    still runs, or a pool child just killed: its heartbeat is still fresh): retried once
    that run has finished or been given up for dead."""
    return _execute(self, run_ids)


def _execute(task, run_ids: list[int]) -> list[str]:
    runs = ingestion_runs_execute(run_ids, task_id=task.request.id or "")  # RunBusy: retried
    return [run.status for run in runs]


@shared_task(name="ingestion.recover_stalled")
def recover_stalled() -> list[int]:
    """Kept registered for messages already queued; beat runs `runs.recover_stalled`."""
    return recover_stalled_runs()


@shared_task(name="ingestion.scan_landing")
def scan_landing() -> int:
    """Beat: pull the enabled HTTP sources (landing their files), then look for new files
    in every landing folder and ingest them in date order."""
    from ingestion.daily.services import scan_landing as scan
    from ingestion.pull.http import pull_enabled_sources

    pull_enabled_sources()  # a failed pull is on its row; the files already there still go
    return len(scan())


@shared_task(bind=True, base=RunTask, run_model="ingestion.HttpPull", name="ingestion.pull")
def pull_http_source(self, pull_id: int) -> str:
    from ingestion.pull.http import http_pull_execute

    return http_pull_execute(pull_id, task_id=self.request.id or "").status


@shared_task(bind=True, base=RunTask, run_model="ingestion.RepushJob", name="pipeline.repush_all")
def run_repush_all(self, job_id: int) -> str:
    from ingestion.stream.repush import repush_all_execute

    return repush_all_execute(job_id, task_id=self.request.id or "").status


@shared_task(name="pipeline.resend_stuck_repushes")
def resend_stuck_repushes() -> int:
    """Kept registered for messages already queued; beat runs `runs.recover_stalled`."""
    from ingestion.stream.repush import resend_stuck_repushes as resend

    return resend()
