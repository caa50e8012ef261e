"""The search index: one entry per record of the lake, kept by every merge.

An entry is one version of one record of a table. When the record came from a
landed file, the entry also names that file and line: the same entry then stands
for the line of the `raw_<source>` resource, which keeps being found by what the
file says after a later version (a correction, a re-push) replaced the table's row.

- `doc` is a `tsvector` of the record's identifiers, kept whole (`lake_ids`:
  `simple` without the parts of compounds), and of its words (`simple`: compounds
  whole and in parts, nothing stemmed), served by a GIN index;
- `key` is the record's key (a transaction id, an invoice number...), with a btree
  index for exact identifier matches and for closing entries at a merge;
- `(resource, at)` of current entries and `(raw_source, at)` of entries that came
  from a file are the indexes a frequent word's search walks, newest first.
"""

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models import Q


class SearchEntry(models.Model):
    id = models.BigAutoField(primary_key=True)
    resource = models.CharField(max_length=100, help_text="The table resource of the record.")
    key = models.CharField(max_length=200, help_text="The record's key in its table.")
    at = models.DateTimeField(help_text="The record's date (or its version's, if it has none).")
    valid_from = models.PositiveIntegerField(null=True, help_text="Version that wrote the record.")
    valid_to = models.PositiveIntegerField(
        null=True, help_text="Version that replaced it; NULL while current."
    )
    raw_source = models.CharField(max_length=100, null=True, help_text="Landing folder, if any.")
    raw_file = models.CharField(max_length=255, null=True, help_text="File name in that folder.")
    raw_line = models.PositiveIntegerField(null=True, help_text="Line number in that file.")
    doc = SearchVectorField()

    class Meta:
        db_table = "search_entries"
        indexes = [
            GinIndex(fields=["doc"], name="search_doc"),
            models.Index(fields=["key"], name="search_key"),
            models.Index(
                fields=["resource", "-at"], name="search_current_at", condition=Q(valid_to=None)
            ),
            models.Index(
                fields=["raw_source", "-at"],
                name="search_raw_at",
                condition=Q(raw_file__isnull=False),
            ),
        ]
