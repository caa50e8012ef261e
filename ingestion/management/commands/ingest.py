"""`python manage.py ingest <source> <path> [--sync]`: ingest one file."""

import time

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from datalake.errors import Invalid
from ingestion.daily.services import ingestion_run_execute, ingestion_run_start
from ingestion.models import FINAL_STATES, RunStatus


class Command(BaseCommand):
    help = "Ingest one file of a source (path relative to LAKE_ROOT, or absolute)."

    def add_arguments(self, parser):
        parser.add_argument("source")
        parser.add_argument("path")
        parser.add_argument(
            "--sync", action="store_true", help="Wait for the run; exit non-zero if it failed."
        )
        parser.add_argument(
            "--inline", action="store_true", help="Run in this process instead of a worker."
        )

    def handle(self, source, path, sync=False, inline=False, **options):
        try:
            with transaction.atomic():
                run = ingestion_run_start(source=source, path=path, cli=True)
        except Invalid as exc:
            raise CommandError(str(exc.detail)) from None
        self.stdout.write(f"run {run.pk}: queued {run.source} {run.path}")
        if inline:
            run = ingestion_run_execute(run.pk)
        elif sync:
            run = self._wait(run)
        if inline or sync:
            self._report(run)

    def _wait(self, run):
        while run.status not in FINAL_STATES:
            time.sleep(1)
            run.refresh_from_db()
        return run

    def _report(self, run):
        self.stdout.write(
            f"run {run.pk}: {run.status}, read {run.rows_read}, loaded {run.rows_loaded}, "
            f"rejected {run.rows_rejected}, version {run.version}"
        )
        if run.status == RunStatus.FAILED:
            raise CommandError(f"run {run.pk} failed: {run.error}")
