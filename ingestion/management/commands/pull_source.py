"""`python manage.py pull_source <name> [--no-ingest]`: pull an HTTP source here and now."""

from django.core.management.base import BaseCommand, CommandError

from ingestion.models import HttpPull, HttpSource, RunStatus
from ingestion.pull.http import http_pull_execute


class Command(BaseCommand):
    help = (
        "Pull every page of an HTTP source (admin: Ingestion > Http sources), land them in "
        "landing/<name>/ and ingest the file, in this process."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="The source, e.g. products.")
        parser.add_argument(
            "--no-ingest", action="store_true", help="Land the file only (the daily scan ingests)."
        )

    def handle(self, name, no_ingest=False, **options):
        source = HttpSource.objects.filter(name=name).first()
        if source is None:
            known = ", ".join(HttpSource.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"No HTTP source named {name!r} (declared: {known}).")
        pull = HttpPull.objects.create(source=source, ingest=not no_ingest)
        self.stdout.write(f"pull {pull.pk}: {source.base_url}{source.path}")
        pull = http_pull_execute(pull.pk)
        self.stdout.write(
            f"pull {pull.pk}: {pull.status}, {pull.pages} pages, {pull.records} records, "
            f"{pull.requests} requests ({pull.retries} retried), landed {pull.path or '-'}"
        )
        if pull.run is not None:
            run = pull.run
            self.stdout.write(
                f"run {run.pk}: {run.status}, loaded {run.rows_loaded}, "
                f"rejected {run.rows_rejected}, version {run.version}"
            )
        if pull.status == RunStatus.FAILED:
            raise CommandError(f"pull {pull.pk} failed: {pull.error}")
