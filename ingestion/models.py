"""Ingestion runs (one file of one source) and their rejected lines."""

from django.conf import settings
from django.db import models


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


FINAL_STATES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.SKIPPED)


class IngestionRun(models.Model):
    """One file of one source through the PySpark job and the versioned merge.

    `rows_read = rows_loaded + rows_rejected` once succeeded. `progress` tells
    what a running run is doing (phase, counts so far).
    """

    source = models.CharField(max_length=50, db_index=True)
    path = models.CharField(max_length=1000, help_text="Relative to LAKE_ROOT when inside it.")
    checksum = models.CharField(max_length=64, blank=True, db_index=True)
    status = models.CharField(
        max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True
    )
    rows_read = models.BigIntegerField(null=True, blank=True)
    rows_loaded = models.BigIntegerField(null=True, blank=True)
    rows_rejected = models.BigIntegerField(null=True, blank=True)
    rows_added = models.BigIntegerField(null=True, blank=True)
    rows_changed = models.BigIntegerField(null=True, blank=True)
    version = models.PositiveIntegerField(null=True, blank=True)
    progress = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["source", "checksum", "status"], name="run_checksum")]

    def __str__(self):
        return f"run {self.pk} {self.source} {self.path} ({self.status})"


class Reject(models.Model):
    """A line that could not be loaded, with its raw text and why."""

    run = models.ForeignKey(IngestionRun, on_delete=models.CASCADE, related_name="rejects")
    line = models.BigIntegerField()
    raw = models.TextField()
    reason = models.TextField()

    class Meta:
        ordering = ["run", "line", "id"]
        indexes = [models.Index(fields=["run", "line"], name="reject_run_line")]

    def __str__(self):
        return f"run {self.run_id} line {self.line}: {self.reason}"


class PipelineOffset(models.Model):
    """The next offset to read per topic partition, written in the same transaction as
    the rows of the batch: a restart resumes exactly after the last merged message."""

    topic = models.CharField(max_length=200)
    partition = models.IntegerField()
    next_offset = models.BigIntegerField()
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


class RepushStatus(models.TextChoices):
    PUSHED = "pushed"
    PROCESSED = "processed"
    FAILED = "failed"


class RepushRequest(models.Model):
    """One stored transaction sent back to the start of the pipeline with a new timestamp."""

    resource = models.CharField(max_length=100, default="transactions")
    transaction_id = models.CharField(max_length=64)
    status = models.CharField(
        max_length=10, choices=RepushStatus.choices, default=RepushStatus.PUSHED
    )
    original_timestamp = models.DateTimeField()
    new_timestamp = models.DateTimeField()
    topic = models.CharField(max_length=200)
    version = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"repush {self.pk} {self.transaction_id} ({self.status})"


class JobStatus(models.TextChoices):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class RepushJob(models.Model):
    """Every current record of a resource streamed back to the pipeline."""

    resource = models.CharField(max_length=100, default="transactions")
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.RUNNING)
    retimestamp = models.BooleanField(default=True)
    total = models.BigIntegerField(default=0)
    pushed = models.BigIntegerField(default=0)
    processed = models.BigIntegerField(default=0)
    failed = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"repush-all {self.pk} ({self.status})"
