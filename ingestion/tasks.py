"""Celery tasks of ingestion: thin, they take an id and call the service (which claims
the run); `RunTask` (datalake/runs/) retries a run a live attempt holds and fails the
runs of a task that died."""

from __future__ import annotations

from celery import shared_task

from accounts.access import serves_no_data
from datalake.runs.tasks import RunTask
from ingestion.daily.services import ingestion_runs_execute, recover_stalled_runs

# Ingestion loads landed files into the lake: it answers no one with data. The
# requester's `write` (unmasked) is checked when the run is asked for.
INGESTS = "loads a landed file into the lake; returns no data to anyone"


@shared_task(bind=True, base=RunTask, run_model="ingestion.IngestionRun", name="ingestion.run")
@serves_no_data(INGESTS)
def run_ingestion(self, run_id: int) -> str:
    return _execute(self, [run_id])[0]


@shared_task(
    bind=True, base=RunTask, run_model="ingestion.IngestionRun", name="ingestion.run_batch"
)
@serves_no_data(INGESTS)
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
@serves_no_data("housekeeping: queues again the runs whose worker died")
def recover_stalled() -> list[int]:
    """Kept registered for messages already queued; beat runs `runs.recover_stalled`."""
    return recover_stalled_runs()


@shared_task(name="ingestion.scan_landing")
@serves_no_data("the scheduled ingestion of landed files: no requester, no answer")
def scan_landing() -> int:
    """Beat: pull the enabled HTTP sources (landing their files), then look for new files
    in every landing folder and ingest them in date order."""
    from ingestion.daily.services import scan_landing as scan
    from ingestion.pull.http import pull_enabled_sources

    pull_enabled_sources()  # a failed pull is on its row; the files already there still go
    return len(scan())


@shared_task(bind=True, base=RunTask, run_model="ingestion.HttpPull", name="ingestion.pull")
@serves_no_data(
    "lands the files of an HTTP source (staff configure it): reads no lake data for anyone"
)
def pull_http_source(self, pull_id: int) -> str:
    from ingestion.pull.http import http_pull_execute

    return http_pull_execute(pull_id, task_id=self.request.id or "").status


@shared_task(bind=True, base=RunTask, run_model="ingestion.RepushJob", name="pipeline.repush_all")
@serves_no_data(
    "sends the records back through the pipeline; the requester's `write` (unmasked) is "
    "checked when the job is asked for, and the job shows only counts"
)
def run_repush_all(self, job_id: int) -> str:
    from ingestion.stream.repush import repush_all_execute

    return repush_all_execute(job_id, task_id=self.request.id or "").status


@shared_task(name="pipeline.resend_stuck_repushes")
@serves_no_data("housekeeping: sends again the re-pushes the consumer never got")
def resend_stuck_repushes() -> int:
    """Kept registered for messages already queued; beat runs `runs.recover_stalled`."""
    from ingestion.stream.repush import resend_stuck_repushes as resend

    return resend()
