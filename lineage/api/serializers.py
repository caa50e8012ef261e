from rest_framework import serializers

from lineage.models import RequestLog, Version


class RequestLogSerializer(serializers.ModelSerializer):
    """A stored request (`user` is the username, null when anonymous)."""

    user = serializers.SerializerMethodField()

    class Meta:
        model = RequestLog
        fields = [
            "id",
            "user",
            "at",
            "method",
            "path",
            "query",
            "body",
            "status_code",
            "duration_ms",
            "resource",
            "ip",
            "restrictions",
            "request_id",
        ]
        read_only_fields = fields

    def get_user(self, obj) -> str | None:
        return obj.username or None


class AccessLogSerializer(serializers.ModelSerializer):
    """Who accessed a resource: one stored request."""

    user = serializers.SerializerMethodField()

    class Meta:
        model = RequestLog
        fields = ["user", "at", "method", "path", "query", "status_code"]
        read_only_fields = fields

    def get_user(self, obj) -> str | None:
        return obj.username or None


class VersionSerializer(serializers.ModelSerializer):
    """One version of a resource."""

    class Meta:
        model = Version
        fields = ["version", "created_at", "source", "rows_added", "rows_changed", "rows_removed"]
        read_only_fields = fields
        extra_kwargs = {
            name: {"allow_null": True, "help_text": f"Rows {name[5:]}; null under a row filter."}
            for name in ("rows_added", "rows_changed", "rows_removed")
        }

    def to_representation(self, instance):
        """Counts over every row are null for a reader under a row filter (`hide_counts`)."""
        body = super().to_representation(instance)
        if self.context.get("hide_counts"):
            body.update(dict.fromkeys(("rows_added", "rows_changed", "rows_removed")))
        return body
