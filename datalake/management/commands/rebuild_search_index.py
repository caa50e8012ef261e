"""Recompute the search index from the tables' current rows (one transaction)."""

import time

from django.core.management.base import BaseCommand
from django.db import connection, transaction

from datalake.search.index import rebuild


class Command(BaseCommand):
    help = (
        "Recompute the search index of every table from its current rows; entries that "
        "name a landed file's line are kept. Merges keep the index current on their own: "
        "this is for a first install or a change of what is indexed."
    )

    def handle(self, *args, **options):
        started = time.perf_counter()
        with transaction.atomic():
            entries = rebuild()
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE search_entries")
        self.stdout.write(f"indexed {entries:,} records in {time.perf_counter() - started:.1f} s")
