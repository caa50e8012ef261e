from rest_framework import serializers

from datalake.api.strict import StrictSerializer
from ingestion.models import IngestionRun
from ingestion.selectors import RUN_COUNTS
from ingestion.sources import SOURCES

PHASE = ("phase", "at")  # what a run's progress says besides its counts


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
            "spark_master",
            "spark_executors",
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
            "spark_master": {
                "help_text": "The Spark master its job ran on: `local[*]` (the worker's own "
                "machine) or a cluster's `spark://host:port` (to staff; `spark://` to others); "
                "empty until Spark has staged it."
            },
            "spark_executors": {
                "help_text": "The executors its job had (1 in local mode: the driver's own); "
                "null until Spark has staged it."
            },
            "checksum": {
                "allow_null": True,
                "help_text": "SHA-256 of the file, to skip a file loaded already; null under "
                "any restriction on the table (hashing guessed lines would recover hidden and "
                "masked values).",
            },
            "created_at": {"help_text": "When the run was requested."},
            "started_at": {"help_text": "When a worker started it; null while queued."},
            "finished_at": {"help_text": "When it ended; null until then."},
            "error": {"help_text": "Why it failed; empty otherwise."},
        }

    def to_representation(self, instance):
        """Under a restriction on the table: the error cut to its kind (the text before
        its first colon: a database message may quote a value) and no checksum (a
        dictionary oracle on the file's hidden and masked values); under a row filter, no
        counts, in the progress neither (they are over the whole file)."""
        body = super().to_representation(instance)
        user = getattr(self.context.get("request"), "user", None)
        cluster = (body.get("spark_master") or "").startswith("spark://")
        if cluster and not getattr(user, "is_staff", False):
            body["spark_master"] = "spark://"  # a host and port: to staff only, as /healthz
        limit = self.context.get("limits", {}).get(instance.source)
        if limit is not None:
            body["error"] = body["error"].split(":", 1)[0]
            body["checksum"] = None
            if limit.rows is not None:
                body.update(dict.fromkeys(RUN_COUNTS))
                body["progress"] = {k: v for k, v in body["progress"].items() if k in PHASE}
        return body


class IngestionRunCreateSerializer(StrictSerializer):
    source = serializers.ChoiceField(choices=sorted(SOURCES), help_text="The source of the file.")
    path = serializers.CharField(
        max_length=1000, help_text="Path of the file, relative to the lake root."
    )


class RejectSerializer(serializers.Serializer):
    """A rejected line as the reader may see it: its number, its fields, why, and (for an
    unrestricted reader of the source's raw files) the line itself."""

    line = serializers.IntegerField(help_text="The line's number in the file (from 1).")
    raw = serializers.CharField(
        allow_null=True,
        help_text="The line as it was read; null unless you read `raw_<source>` unrestricted.",
    )
    fields = serializers.DictField(
        help_text="The source's fields read from the line (those of the table you may see, "
        "masked ones as pseudonyms); empty when none could be read."
    )
    reason = serializers.CharField(
        help_text="Why it was rejected: `<code>: <sentence>`, or the code only under a restriction."
    )
