"""The catalog's persistent part: one row per resource, the target of grants and logs."""

from django.db import models

from accounts.access.querysets import ReadableQuerySet


class ResourceKind(models.TextChoices):
    TABLE = "table", "PostgreSQL table"
    FILES = "files", "Folder of raw files"


class Resource(models.Model):
    """A table or a folder of raw files that the portal exposes.

    Built-in tables are registered by `migrate`; a `raw_<source>` row appears for
    every folder under `LAKE_ROOT/landing/`. Columns and filters are not stored
    here: they come from the code registry (tables) or the files (folders).
    """

    name = models.SlugField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=ResourceKind.choices)
    description = models.TextField(blank=True)
    versioning = models.BooleanField(default=False)
    current_version = models.PositiveIntegerField(default=0)
    source = models.CharField(
        max_length=100, blank=True, help_text="Landing folder name (for `files` resources)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ReadableQuerySet.as_manager()  # .readable_by(user): accounts.access.rules

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class DataStamp(models.Model):
    """How many statements changed a table without versions.

    Counted by a statement trigger on each such table (migration 0005), whoever writes
    (a merge, the admin, a shell), in the writer's transaction: a new state of the
    table always has a new stamp, and a rolled-back change leaves it as it was. It is
    what a snapshot walk, an ETag and `X-Data-Version` name for these tables
    (`datalake.query.snapshots`); a versioned table has its version instead.
    """

    table = models.CharField(max_length=100, primary_key=True)
    stamp = models.BigIntegerField()

    class Meta:
        db_table = "datalake_datastamp"

    def __str__(self):
        return f"{self.table}@{self.stamp}"
