"""`python manage.py ingest_landing [--sync]`: ingest every new file of the landing zone."""

from django.core.management.base import BaseCommand, CommandError

from ingestion.daily.services import display_path, ingestion_runs_execute, pending_files
from ingestion.models import RunStatus


class Command(BaseCommand):
    help = "Ingest every landing file not ingested yet: rates first, each source in date order."

    def add_arguments(self, parser):
        parser.add_argument(
            "--sync", action="store_true", help="Run here, one after another (no worker needed)."
        )

    def handle(self, sync=False, **options):
        if not sync:
            from ingestion.daily.services import scan_landing

            runs = scan_landing()
            self.stdout.write(f"queued {len(runs)} runs")
            return
        from ingestion.models import IngestionRun

        failed = 0
        created = [
            IngestionRun.objects.create(source=source, path=display_path(path))
            for source, path in pending_files()
        ]
        for run in ingestion_runs_execute([run.pk for run in created]):
            self.stdout.write(
                f"run {run.pk} {run.source} {run.path}: {run.status} "
                f"(read {run.rows_read}, loaded {run.rows_loaded}, rejected {run.rows_rejected})"
            )
            failed += run.status == RunStatus.FAILED
        if failed:
            raise CommandError(f"{failed} runs failed")
