"""Aggregates of completed transactions, kept current by every merge (same transaction).

Each table sums `amount_eur` and counts over one grouping; a merge adds the rows it
made current and subtracts the rows it closed, so corrections and re-pushes that
move a transaction between buckets are exact. `manage.py rebuild_metrics`
recomputes them from the table.
"""

from django.db import models


class ProductDay(models.Model):
    product_id = models.CharField(max_length=64)
    day = models.DateField()
    quantity = models.BigIntegerField(default=0)
    transactions = models.BigIntegerField(default=0)
    total_eur = models.DecimalField(max_digits=20, decimal_places=2, default=0)

    class Meta:
        db_table = "metrics_product_day"
        constraints = [models.UniqueConstraint(fields=["product_id", "day"], name="mpd_key")]
        indexes = [models.Index(fields=["day", "product_id"], name="mpd_day")]


class UserTypeDay(models.Model):
    user_id = models.CharField(max_length=64)
    transaction_type = models.CharField(max_length=32)
    day = models.DateField()
    transactions = models.BigIntegerField(default=0)
    total_eur = models.DecimalField(max_digits=20, decimal_places=2, default=0)

    class Meta:
        db_table = "metrics_user_type_day"
        constraints = [
            models.UniqueConstraint(fields=["user_id", "transaction_type", "day"], name="mutd_key")
        ]
        indexes = [models.Index(fields=["day"], name="mutd_day")]


class Minute(models.Model):
    minute = models.DateTimeField(unique=True)
    transactions = models.BigIntegerField(default=0)
    total_eur = models.DecimalField(max_digits=20, decimal_places=2, default=0)

    class Meta:
        db_table = "metrics_minute"
