from rest_framework import serializers

from datalake.api.strict import StrictSerializer
from ingestion.models import IngestionRun, Reject
from ingestion.sources import SOURCES


class IngestionRunSerializer(serializers.ModelSerializer):
    """A run: one file of one source, its status and counts."""

    url = serializers.HyperlinkedIdentityField(
        view_name="ingestion-run-detail", help_text="This run, to poll its status."
    )
    rejects_url = serializers.HyperlinkedIdentityField(
        view_name="ingestion-run-rejects", help_text="The lines it rejected, paginated."
    )

    class Meta:
        model = IngestionRun
        fields = [
            "id",
            "url",
            "source",
            "path",
            "status",
            "rows_read",
            "rows_loaded",
            "rows_rejected",
            "rows_added",
            "rows_changed",
            "version",
            "progress",
            "checksum",
            "created_at",
            "started_at",
            "finished_at",
            "error",
            "rejects_url",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "id": {"help_text": "The run's id."},
            "source": {"help_text": "The source the file belongs to, e.g. `transactions`."},
            "status": {
                "help_text": "`queued`, `running`, then `succeeded`, `failed` or `skipped` (a "
                "file of the same checksum was already loaded)."
            },
            "rows_read": {"help_text": "Lines read; `rows_loaded + rows_rejected` once done."},
            "rows_loaded": {"help_text": "Rows parsed and merged into the table."},
            "rows_rejected": {"help_text": "Lines refused (see `rejects_url`)."},
            "rows_added": {"help_text": "Rows of keys new to the table."},
            "rows_changed": {"help_text": "Rows that replaced a current row with other values."},
            "version": {"help_text": "The table version the run published; null if none."},
            "progress": {
                "help_text": "What a running run is doing: `phase` (`checksum`, `spark`, "
                "`merging`, `done`), counts so far, `at`."
            },
            "checksum": {"help_text": "SHA-256 of the file, to skip a file loaded already."},
            "created_at": {"help_text": "When the run was requested."},
            "started_at": {"help_text": "When a worker started it; null while queued."},
            "finished_at": {"help_text": "When it ended; null until then."},
            "error": {"help_text": "Why it failed; empty otherwise."},
        }


class IngestionRunCreateSerializer(StrictSerializer):
    source = serializers.ChoiceField(choices=sorted(SOURCES), help_text="The source of the file.")
    path = serializers.CharField(
        max_length=1000, help_text="Path of the file, relative to the lake root."
    )


class RejectSerializer(serializers.ModelSerializer):
    """A rejected line: its number in the file, its raw text, and why."""

    class Meta:
        model = Reject
        fields = ["line", "raw", "reason"]
        read_only_fields = fields
        extra_kwargs = {
            "line": {"help_text": "The line's number in the file, from 1."},
            "raw": {"help_text": "The line's text as delivered."},
            "reason": {"help_text": "Why it was rejected (unparsable, a missing field, ...)."},
        }
