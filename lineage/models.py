"""The request log: every request that reached `/api/`, append-only."""

from django.db import models

from accounts.access.querysets import ReadableQuerySet


class RequestLog(models.Model):
    """Who called what, when, with what body, and how it ended.

    Append-only: no API changes or deletes an entry, and a database trigger
    refuses UPDATE and DELETE on the table (migration 0002). `user_id` carries no
    foreign key so that deleting a user never touches the log; `username` keeps
    the name as it was.
    """

    at = models.DateTimeField(db_index=True)
    user_id = models.BigIntegerField(null=True, blank=True)
    username = models.CharField(max_length=150, blank=True)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=2000)
    query = models.JSONField(default=dict, blank=True)
    body = models.JSONField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField()
    duration_ms = models.FloatField()
    resource = models.CharField(max_length=100, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    restrictions = models.JSONField(null=True, blank=True)
    # The request's X-Request-ID (the caller's, or generated), also in its log lines.
    # A database default: a process still running older code can insert without it.
    request_id = models.CharField(max_length=64, blank=True, db_default="")

    objects = ReadableQuerySet.as_manager()  # .readable_by(user): accounts.access.rules

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["resource", "-at"], name="reqlog_resource_at"),
            models.Index(fields=["username", "-at"], name="reqlog_user_at"),
            models.Index(fields=["request_id"], name="reqlog_request_id"),
        ]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.username or '-'} {self.method} {self.path}"


class Version(models.Model):
    """One version of a versioned resource: what made it and how many rows it touched."""

    resource = models.ForeignKey(
        "datalake.Resource", on_delete=models.CASCADE, related_name="versions"
    )
    version = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    source = models.CharField(max_length=100, help_text="e.g. `ingestion:42`, `repush:7`.")
    rows_added = models.BigIntegerField(default=0)
    rows_changed = models.BigIntegerField(default=0)
    rows_removed = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["resource", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["resource", "version"], name="version_unique")
        ]

    def __str__(self):
        return f"{self.resource} v{self.version} ({self.source})"


class RequestSeal(models.Model):
    """A stored request's link in the audit chain (lineage/chain/, docs/AUDIT.md).

    `hash = sha256(previous link's hash || canonical encoding of the request)`, the
    encoding carrying `body_hash` (the body's own digest) instead of the body, so that a
    body can be redacted without breaking the chain. Given by the sealer only, in the
    order it finds requests committed; append-only like the log (migration 0005).
    `log_id` carries no foreign key: a deleted request must leave its seal behind, as
    evidence.
    """

    sequence = models.BigIntegerField(primary_key=True)
    log_id = models.BigIntegerField(unique=True)
    body_hash = models.BinaryField(max_length=32)
    hash = models.BinaryField(max_length=32)
    sealed_at = models.DateTimeField()

    class Meta:
        ordering = ["sequence"]

    def __str__(self):
        return f"seal {self.sequence} of request {self.log_id}"


class SealQueue(models.Model):
    """Stored requests not sealed yet: a trigger adds every new request's id in the
    transaction that stores it, and the sealer removes it in the one that seals it, so
    that no request is skipped or sealed twice however writers interleave."""

    log_id = models.BigIntegerField(primary_key=True)

    def __str__(self):
        return f"request {self.log_id}, not sealed yet"
