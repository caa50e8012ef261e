"""Aggregates of completed transactions, kept current by every merge (same transaction).

Each table sums `amount_eur` and counts over one grouping; a merge adds the rows it
made current and subtracts the rows it closed, so corrections and re-pushes that
move a transaction between buckets are exact. `manage.py rebuild_metrics`
recomputes them from the table.
"""

from django.conf import settings
from django.db import models

from datalake.runs.models import ReadableRunQuerySet, Run, StallPolicy


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

    product_id = models.CharField(max_length=64)
    quantity = models.BigIntegerField(default=0)
    transactions = models.BigIntegerField(default=0)
    total_eur = models.DecimalField(max_digits=20, decimal_places=2, default=0)

    class Meta:
        db_table = "metrics_product_total"
        # A constraint, not `unique=True`: that one also builds a LIKE index (pattern ops)
        # that no query uses and every merge's update of the row writes to.
        constraints = [models.UniqueConstraint(fields=["product_id"], name="mpt_key")]
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


class DayChanges(models.Model):
    """How many merges changed a day's completed transactions. A range's ranking is kept
    (RangeResult) while the sum of its days' counters is the one it was computed at:
    counters only grow, so any change to a day of the range makes the sum new."""

    day = models.DateField(primary_key=True)
    changes = models.BigIntegerField(default=0)

    class Meta:
        db_table = "metrics_day_changes"


class RangeResult(models.Model):
    """A ranking over a range (`kind`: top products, spend per user and type), its first
    ranks kept in RangeRow, valid while the range's DayChanges sum equals `stamp`."""

    kind = models.CharField(max_length=32)
    range_key = models.CharField(max_length=200)
    stamp = models.BigIntegerField()
    row_count = models.BigIntegerField(default=0)  # groups in the range, all of them
    created_at = models.DateTimeField()

    class Meta:
        db_table = "metrics_range_result"
        constraints = [
            models.UniqueConstraint(fields=["kind", "range_key", "stamp"], name="mrr_key")
        ]
        indexes = [models.Index(fields=["created_at"], name="mrr_created")]


class RangeRow(models.Model):
    """One rank of a RangeResult: a page is one range read of (result, rank)."""

    result = models.ForeignKey(
        RangeResult, on_delete=models.CASCADE, related_name="rows", db_index=False
    )
    rank = models.IntegerField()
    key = models.CharField(max_length=64)  # product_id, or user_id
    key2 = models.CharField(max_length=32, blank=True)  # transaction_type ('' for products)
    total = models.DecimalField(max_digits=20, decimal_places=2)  # quantity, or total_eur
    transactions = models.BigIntegerField()

    class Meta:
        db_table = "metrics_range_row"
        constraints = [models.UniqueConstraint(fields=["result", "rank"], name="mrrow_key")]


class Scope(models.Model):
    """A row filter that restricted `read` grants of `transactions` apply (their union, as
    `accounts.access.restrictions.Restriction.rows`): the metrics follower keeps the five
    aggregates of the rows it lets through, in the `Scoped*` tables, from the version it
    was built at on (metrics.scopes). Made on the first request that needs it; dropped
    when no grant needs it any more."""

    key = models.CharField(max_length=64, unique=True)  # the row filter's fingerprint
    row_filter = models.JSONField()  # [{column: [values]}]: any of them lets a row through
    built_at_version = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField()

    class Meta:
        db_table = "metrics_scope"

    def __str__(self):
        return f"scope {self.pk} {self.row_filter}"


def _money():
    return models.DecimalField(max_digits=20, decimal_places=2, default=0)


class ScopedProductDay(models.Model):
    scope = models.ForeignKey(Scope, on_delete=models.CASCADE, db_index=False)
    product_id = models.CharField(max_length=64)
    day = models.DateField()
    quantity = models.BigIntegerField(default=0)
    transactions = models.BigIntegerField(default=0)
    total_eur = _money()

    class Meta:
        db_table = "metrics_scoped_product_day"
        constraints = [
            models.UniqueConstraint(fields=["scope", "product_id", "day"], name="mspd_key")
        ]
        indexes = [models.Index(fields=["scope", "day"], name="mspd_day")]


class ScopedUserTypeDay(models.Model):
    scope = models.ForeignKey(Scope, on_delete=models.CASCADE, db_index=False)
    user_id = models.CharField(max_length=64)
    transaction_type = models.CharField(max_length=32)
    day = models.DateField()
    transactions = models.BigIntegerField(default=0)
    total_eur = _money()

    class Meta:
        db_table = "metrics_scoped_user_type_day"
        constraints = [
            models.UniqueConstraint(
                fields=["scope", "user_id", "transaction_type", "day"], name="msutd_key"
            )
        ]
        indexes = [models.Index(fields=["scope", "day"], name="msutd_day")]


class ScopedProductTotal(models.Model):
    scope = models.ForeignKey(Scope, on_delete=models.CASCADE, db_index=False)
    product_id = models.CharField(max_length=64)
    quantity = models.BigIntegerField(default=0)
    transactions = models.BigIntegerField(default=0)
    total_eur = _money()

    class Meta:
        db_table = "metrics_scoped_product_total"
        constraints = [models.UniqueConstraint(fields=["scope", "product_id"], name="mspt_key")]
        indexes = [models.Index(fields=["scope", "-quantity", "product_id"], name="mspt_rank")]


class ScopedUserTypeTotal(models.Model):
    scope = models.ForeignKey(Scope, on_delete=models.CASCADE, db_index=False)
    user_id = models.CharField(max_length=64)
    transaction_type = models.CharField(max_length=32)
    transactions = models.BigIntegerField(default=0)
    total_eur = _money()

    class Meta:
        db_table = "metrics_scoped_user_type_total"
        constraints = [
            models.UniqueConstraint(
                fields=["scope", "user_id", "transaction_type"], name="msutt_key"
            )
        ]
        indexes = [
            models.Index(
                fields=["scope", "-total_eur", "user_id", "transaction_type"],
                name="msutt_rank",
                condition=models.Q(transactions__gt=0),
            )
        ]


class ScopedMinute(models.Model):
    scope = models.ForeignKey(Scope, on_delete=models.CASCADE, db_index=False)
    minute = models.DateTimeField()
    transactions = models.BigIntegerField(default=0)
    total_eur = _money()

    class Meta:
        db_table = "metrics_scoped_minute"
        constraints = [models.UniqueConstraint(fields=["scope", "minute"], name="msm_key")]


class Report(Run):
    """One asynchronous report: its type, parameters, state and where its result is.

    The API says `running` while it is queued or running, `completed` for `succeeded`
    and `error` for `failed`. One still unfinished REPORT_TIMEOUT seconds after it was
    requested lost its worker (or ran out of time) and fails."""

    report_name = models.CharField(max_length=100)
    params = models.JSONField(default=dict, blank=True)
    columns = models.JSONField(default=list, blank=True)
    row_count = models.BigIntegerField(null=True, blank=True)
    result_path = models.CharField(max_length=500, blank=True)
    requested_by = models.ForeignKey(
        "auth.User", null=True, on_delete=models.SET_NULL, related_name="reports"
    )

    run_label = "report"
    label_fields = ("report_name",)
    stall_policy = StallPolicy.FAIL

    objects = ReadableRunQuerySet.as_manager()  # .readable_by(user): accounts.access.rules

    class Meta:
        ordering = ["-id"]

    @classmethod
    def stall_seconds(cls) -> float:
        return settings.REPORT_TIMEOUT

    @classmethod
    def stalled(cls):
        """Unfinished REPORT_TIMEOUT seconds after it was requested (queued or running)."""
        return cls.objects.active().filter(created_at__lt=cls.stall_cutoff())

    @classmethod
    def stall_error(cls) -> str:
        return f"No result within {cls.stall_seconds()} s: the worker crashed or timed out."


class ReportRow(models.Model):
    """A result row, numbered, so that any page of a result is one index range read."""

    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="rows")
    n = models.IntegerField()
    data = models.JSONField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["report", "n"], name="report_row_key")]


# The machine-learning models live in their own module of this app (metrics/ml/).
from metrics.ml.models import MLModel, ModelVersion, Training  # noqa: E402, F401
