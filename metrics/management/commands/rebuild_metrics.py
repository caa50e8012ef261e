"""`python manage.py rebuild_metrics`: recompute the metric aggregates from `transactions`."""

from django.core.management.base import BaseCommand
from django.db import connection, transaction

from datalake.models import Resource
from metrics.aggregates import AGGREGATES, rebuild


class Command(BaseCommand):
    help = "Recompute the metric aggregates from the current transactions."

    def handle(self, **options):
        with transaction.atomic():
            # The resource lock keeps merges out while the aggregates are rebuilt.
            Resource.objects.select_for_update().get(name="transactions")
            rebuild()
        # Fresh statistics for the planner (autovacuum may be off or behind): without
        # them, a table refilled from empty is planned as if it held a few rows.
        with connection.cursor() as cursor:
            for spec in AGGREGATES:
                cursor.execute(f'ANALYZE "{spec[0]}"')
        self.stdout.write("metrics rebuilt")
