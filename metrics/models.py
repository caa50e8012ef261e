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


class ProductTotal(models.Model):
    """All-time sums per product: top products without a range read no day rows."""

    product_id = models.CharField(max_length=64, unique=True)
    quantity = models.BigIntegerField(default=0)
    transactions = models.BigIntegerField(default=0)
    total_eur = models.DecimalField(max_digits=20, decimal_places=2, default=0)

    class Meta:
        db_table = "metrics_product_total"
        indexes = [models.Index(fields=["-quantity", "product_id"], name="mpt_rank")]


class UserTypeTotal(models.Model):
    """All-time sums per user and type: the ranking without a range is an index walk."""

    user_id = models.CharField(max_length=64)
    transaction_type = models.CharField(max_length=32)
    transactions = models.BigIntegerField(default=0)
    total_eur = models.DecimalField(max_digits=20, decimal_places=2, default=0)

    class Meta:
        db_table = "metrics_user_type_total"
        constraints = [
            models.UniqueConstraint(fields=["user_id", "transaction_type"], name="mutt_key")
        ]
        indexes = [
            models.Index(
                fields=["-total_eur", "user_id", "transaction_type"],
                name="mutt_rank",
                condition=models.Q(transactions__gt=0),
            )
        ]


class Minute(models.Model):
    minute = models.DateTimeField(unique=True)
    transactions = models.BigIntegerField(default=0)
    total_eur = models.DecimalField(max_digits=20, decimal_places=2, default=0)

    class Meta:
        db_table = "metrics_minute"


class ReportStatus(models.TextChoices):
    RUNNING = "running"
    COMPLETED = "completed"
    ERROR = "error"


class Report(models.Model):
    """One asynchronous report: its type, parameters, state and where its result is."""

    report_name = models.CharField(max_length=100)
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=10, choices=ReportStatus.choices, default=ReportStatus.RUNNING
    )
    error = models.TextField(blank=True)
    columns = models.JSONField(default=list, blank=True)
    row_count = models.BigIntegerField(null=True, blank=True)
    result_path = models.CharField(max_length=500, blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    requested_by = models.ForeignKey(
        "auth.User", null=True, on_delete=models.SET_NULL, related_name="reports"
    )
    report_date = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"report {self.pk} {self.report_name} ({self.status})"


class ReportRow(models.Model):
    """A result row, numbered, so that any page of a result is one index range read."""

    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="rows")
    n = models.IntegerField()
    data = models.JSONField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["report", "n"], name="report_row_key")]


# The machine-learning models live in their own module of this app (metrics/ml/).
from .ml.models import MLModel, ModelVersion, Training  # noqa: E402, F401
