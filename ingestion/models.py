"""Ingestion runs (one file of one source) and their rejected lines; the pipeline's
bookkeeping; HTTP sources and their pulls; the `products` table they feed."""

from urllib.parse import urlsplit

from django.conf import settings
from django.db import models

from datalake.models.lake import VersionedRecord, current_index, current_unique, history_index
from datalake.runs.models import FINAL_STATES, ReadableRunQuerySet, Run, RunStatus, StallPolicy

__all__ = ["FINAL_STATES", "RunStatus"]  # the runs' vocabulary, as before


class IngestionRun(Run):
    """One file of one source through the PySpark job and the versioned merge.

    `rows_read = rows_loaded + rows_rejected` once succeeded. `progress` tells
    what a running run is doing (phase, counts so far). An attempt claims the run
    (`claim`, `heartbeat_at`); a run whose heartbeat stopped lost its worker and is
    queued again, with the queued runs of its batch (`recover_stalled_runs`). A failed
    run may be executed again (a redelivered batch, the command line); `skipped`: its
    file was already loaded.
    """

    source = models.CharField(max_length=50, db_index=True)
    path = models.CharField(max_length=1000, help_text="Relative to LAKE_ROOT when inside it.")
    checksum = models.CharField(max_length=64, blank=True, db_index=True)
    rows_read = models.BigIntegerField(null=True, blank=True)
    rows_loaded = models.BigIntegerField(null=True, blank=True)
    rows_rejected = models.BigIntegerField(null=True, blank=True)
    rows_added = models.BigIntegerField(null=True, blank=True)
    rows_changed = models.BigIntegerField(null=True, blank=True)
    version = models.PositiveIntegerField(null=True, blank=True)
    progress = models.JSONField(default=dict, blank=True)
    spark_master = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text="The Spark master its job ran on (`local[*]`, `spark://host:7077`).",
    )
    spark_executors = models.PositiveIntegerField(
        null=True, blank=True, help_text="The executors its job had; 1 in local mode."
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )

    run_label = "run"
    label_fields = ("source", "path")
    claimable = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.FAILED)
    stall_policy = StallPolicy.OWN  # queued again with the rest of its batch, in order

    objects = ReadableRunQuerySet.as_manager()  # .readable_by(user): accounts.access.rules

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["source", "checksum", "status"], name="run_checksum")]

    @classmethod
    def heartbeat_seconds(cls) -> float:
        return settings.INGESTION_HEARTBEAT_SECONDS

    @classmethod
    def stall_seconds(cls) -> float:
        return settings.INGESTION_STALL_SECONDS

    @classmethod
    def stalled(cls):
        cutoff = models.Q(heartbeat_at__isnull=True) | models.Q(heartbeat_at__lt=cls.stall_cutoff())
        return cls.objects.filter(cutoff, status=RunStatus.RUNNING)

    @classmethod
    def recover_stalled(cls) -> list[int]:
        from ingestion.daily.services import recover_stalled_runs

        return recover_stalled_runs()


class Reject(models.Model):
    """A line that could not be loaded: its raw text, the source's own fields that could
    be read from it (what readers of the table see, under their restriction), and why."""

    run = models.ForeignKey(IngestionRun, on_delete=models.CASCADE, related_name="rejects")
    line = models.BigIntegerField()
    raw = models.TextField()
    reason = models.TextField()
    fields = models.JSONField(
        null=True,
        blank=True,
        help_text="The source's fields read from the line, by column (null: not recorded).",
    )

    class Meta:
        ordering = ["run", "line", "id"]
        indexes = [models.Index(fields=["run", "line"], name="reject_run_line")]

    def __str__(self):
        return f"run {self.run_id} line {self.line}: {self.reason}"


class PipelineOffset(models.Model):
    """The next offset to read per topic partition, written in the same transaction as
    the rows of the batch: a restart resumes exactly after the last merged message.
    With the topic's id: offsets of a topic that was recreated (or of a broker that lost
    its log) count from 0 again, and the stored ones no longer apply."""

    topic = models.CharField(max_length=200)
    partition = models.IntegerField()
    next_offset = models.BigIntegerField()
    topic_id = models.CharField(
        max_length=40, blank=True, help_text="The broker's id of the topic these offsets are in."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["topic", "partition"], name="pipeline_offset_key")
        ]

    def __str__(self):
        return f"{self.topic}[{self.partition}] @ {self.next_offset}"


class PipelineReject(models.Model):
    """An invalid pipeline message (also sent to the dead-letter topic)."""

    topic = models.CharField(max_length=200)
    partition = models.IntegerField()
    offset = models.BigIntegerField()
    raw = models.TextField()
    reason = models.TextField()
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["topic", "partition", "offset"], name="pipeline_reject_key"
            )
        ]

    def __str__(self):
        return f"{self.topic}[{self.partition}]@{self.offset}: {self.reason}"


class RepushRequest(Run):
    """One stored transaction sent back to the start of the pipeline with a new timestamp.

    `running` while its message is on the topic (the API says `pushed`), `succeeded`
    once the consumer merged it (`processed`, `finished_at`), or `failed`. A message
    that never reached the consumer is sent again (its kind's stall policy:
    `resend_stuck_repushes`)."""

    resource = models.CharField(max_length=100, default="transactions")
    transaction_id = models.CharField(max_length=64)
    original_timestamp = models.DateTimeField()
    new_timestamp = models.DateTimeField()
    topic = models.CharField(max_length=200)
    version = models.PositiveIntegerField(null=True, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    resent_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sent again by the reconciliation (still pushed)."
    )

    run_label = "repush"
    label_fields = ("transaction_id",)
    stall_policy = StallPolicy.OWN  # sent again, same id, new timestamp

    objects = ReadableRunQuerySet.as_manager()  # .readable_by(user): accounts.access.rules

    class Meta:
        ordering = ["-id"]

    @classmethod
    def stall_seconds(cls) -> float:
        return settings.REPUSH_RESEND_AFTER_S

    @classmethod
    def stalled(cls):
        """Still on the topic REPUSH_RESEND_AFTER_S after it was sent (or last resent)."""
        cutoff = cls.stall_cutoff()
        return (
            cls.objects.active()
            .filter(created_at__lt=cutoff)
            .filter(models.Q(resent_at__isnull=True) | models.Q(resent_at__lt=cutoff))
        )

    @classmethod
    def recover_stalled(cls) -> list[int]:
        from ingestion.stream.repush import resend_stuck

        return resend_stuck()


class RepushJob(Run):
    """Every current record of a resource streamed back to the pipeline: `running` from
    the task's claim until the consumer has merged every record (`succeeded`; the API
    says `completed`). The task's heartbeat stops once every record is on the topic:
    a job whose heartbeat stopped while streaming lost its worker and fails."""

    resource = models.CharField(max_length=100, default="transactions")
    retimestamp = models.BooleanField(default=True)
    total = models.BigIntegerField(default=0)
    pushed = models.BigIntegerField(default=0)
    processed = models.BigIntegerField(default=0)
    failed = models.BigIntegerField(default=0)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )

    run_label = "repush-all"
    label_fields = ("resource",)
    claimable = (RunStatus.QUEUED,)  # once streaming, never again: a redelivery does nothing
    stall_policy = StallPolicy.FAIL

    objects = ReadableRunQuerySet.as_manager()  # .readable_by(user): accounts.access.rules

    class Meta:
        ordering = ["-id"]


class Product(VersionedRecord):
    """A product of the `products` source (an HTTP API's catalogue, priced in USD).

    `price_eur` is `price_usd` at the ECB rate of `rate_date`: the rate of the day the
    catalogue was pulled, or of the latest earlier day that has one (DATA.md's rule).
    A pull adds or replaces products by `product_id` and never deletes one.
    """

    product_id = models.CharField(max_length=64)
    title = models.TextField(null=True, blank=True)
    category = models.CharField(max_length=128, null=True, blank=True)
    description = models.TextField(null=True, blank=True)
    price_usd = models.DecimalField(max_digits=14, decimal_places=2)
    price_eur = models.DecimalField(max_digits=14, decimal_places=2)
    rate_date = models.DateField(help_text="Date of the ECB USD rate used for price_eur.")

    class Meta:
        db_table = "products"
        constraints = [current_unique("products", "product_id")]
        indexes = [
            history_index("products", "product_id"),
            current_index("products", "category", "product_id"),
        ]


class Pagination(models.TextChoices):
    OFFSET = "offset", "offset/limit"
    NEXT = "next", "next link"


class HttpSource(models.Model):
    """An HTTP API pulled into the lake (ingestion/pull/http.py).

    `name` is the lake source its pages feed: they land in `landing/<name>/` (so
    `raw_<name>` serves them) and load with that source's parser and merge. A value
    of `username` or `password` written `env:VAR` is read from the environment at
    each pull, so the secret need not be stored here; only names listed in
    `HTTP_SOURCE_SECRET_NAMES` are read.
    """

    name = models.SlugField(
        max_length=50, unique=True, help_text="The lake source it feeds, e.g. `products`."
    )
    base_url = models.URLField(help_text="e.g. https://api.escuelajs.co/api/v1")
    path = models.CharField(
        max_length=500, blank=True, help_text="The collection under base_url, e.g. /products."
    )
    pagination = models.CharField(
        max_length=10, choices=Pagination.choices, default=Pagination.OFFSET
    )
    page_size = models.PositiveIntegerField(default=50, help_text="`limit` of offset paging.")
    items_key = models.CharField(
        max_length=100,
        blank=True,
        help_text="Dotted path of the records in a page's body; empty: the body is the list.",
    )
    next_key = models.CharField(
        max_length=100,
        default="next",
        help_text="Next-link paging: dotted path of the next page's URL in the body "
        "(else the Link header's rel=next).",
    )
    token_url = models.CharField(
        max_length=500,
        blank=True,
        help_text="Path or URL exchanging username/password for an access token; "
        "empty: no authentication.",
    )
    refresh_url = models.CharField(
        max_length=500,
        blank=True,
        help_text="Path or URL exchanging the refresh token for a new access token; "
        "empty: log in again.",
    )
    username_field = models.CharField(
        max_length=50, default="username", help_text="Key of the username in the login body."
    )
    refresh_field = models.CharField(
        max_length=50, default="refresh_token", help_text="Key of the token in the refresh body."
    )
    username = models.CharField(max_length=200, blank=True, help_text="`env:VAR` reads it.")
    password = models.CharField(max_length=200, blank=True, help_text="`env:VAR` reads it.")
    field_map = models.JSONField(
        default=dict,
        blank=True,
        help_text='Column -> dotted path in a record, e.g. {"price_usd": "price"}; '
        "unset columns use the source's defaults.",
    )
    max_retries = models.PositiveSmallIntegerField(
        default=5, help_text="Retries of a request answered 429 or 5xx, or not answered."
    )
    backoff_seconds = models.FloatField(
        default=1.0, help_text="First back-off, doubled at each retry (Retry-After wins)."
    )
    timeout_seconds = models.FloatField(default=30.0)
    enabled = models.BooleanField(default=True, help_text="Pulled by the daily landing scan.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.base_url}{self.path})"

    def clean(self):
        from django.core.exceptions import ValidationError

        from ingestion.sources import SOURCES

        errors = {}
        if self.name not in SOURCES:
            errors["name"] = [f"Not a lake source; one of {sorted(SOURCES)}."]
        # The pull refuses these too (ingestion/pull/http.py); here the admin says so.
        for name in ("base_url", "path", "token_url", "refresh_url"):
            scheme = urlsplit(getattr(self, name) or "").scheme.lower()
            if (name == "base_url" or scheme) and scheme not in ("http", "https"):
                errors[name] = ["Only http(s) URLs (or a path under base_url)."]
        for name in ("username", "password"):
            value = getattr(self, name) or ""
            variable = value.removeprefix("env:")
            if value.startswith("env:") and variable not in settings.HTTP_SOURCE_SECRET_NAMES:
                errors[name] = [f"env:{variable} is not listed in HTTP_SOURCE_SECRET_NAMES."]
        if errors:
            raise ValidationError(errors)


class HttpPull(Run):
    """One pull of an HTTP source: every page fetched, landed as one file, then ingested.

    `pages_info` lists each page's URL, first line in the landed file and record count.
    A pull whose heartbeat stopped lost its worker and fails (the next pull lands anew).
    """

    source = models.ForeignKey(HttpSource, on_delete=models.CASCADE, related_name="pulls")
    ingest = models.BooleanField(default=True, help_text="Ingest the landed file afterwards.")
    pages = models.PositiveIntegerField(default=0)
    records = models.PositiveIntegerField(default=0)
    requests = models.PositiveIntegerField(default=0)
    retries = models.PositiveIntegerField(default=0)
    token_requests = models.PositiveIntegerField(default=0)
    pages_info = models.JSONField(default=list, blank=True)
    path = models.CharField(max_length=1000, blank=True, help_text="The landed file.")
    run = models.ForeignKey(IngestionRun, null=True, blank=True, on_delete=models.SET_NULL)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )

    run_label = "pull"
    stall_policy = StallPolicy.FAIL

    class Meta:
        ordering = ["-id"]

    def label(self) -> str:
        return self.source.name
