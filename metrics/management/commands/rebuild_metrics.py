"""`python manage.py rebuild_metrics`: recompute the metric aggregates from `transactions`."""

from django.core.management.base import BaseCommand
from django.db import transaction

from datalake.models import Resource
from metrics.aggregates import rebuild


class Command(BaseCommand):
    help = "Recompute the metric aggregates from the current transactions."

    def handle(self, **options):
        with transaction.atomic():
            # The resource lock keeps merges out while the aggregates are rebuilt.
            Resource.objects.select_for_update().get(name="transactions")
            rebuild()
        self.stdout.write("metrics rebuilt")
