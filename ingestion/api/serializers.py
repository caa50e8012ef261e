from rest_framework import serializers

from datalake.api.strict import StrictSerializer
from ingestion.models import IngestionRun, Reject
from ingestion.sources import SOURCES


class IngestionRunSerializer(serializers.ModelSerializer):
    """A run: one file of one source, its status and counts."""

    url = serializers.HyperlinkedIdentityField(view_name="ingestion-run-detail")
    rejects_url = serializers.HyperlinkedIdentityField(view_name="ingestion-run-rejects")

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
