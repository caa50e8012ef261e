from rest_framework import serializers

from lineage.models import RequestLog, Version

LOG_FIELDS = {
    "id": {"help_text": "The entry's id, increasing with time."},
    "at": {"help_text": "When the request arrived (UTC)."},
    "method": {"help_text": "The HTTP method (`GET`, `POST`, ...)."},
    "path": {"help_text": "The URL path, without the query string."},
    "query": {
        "help_text": "The query parameters as an object (a repeated one as a list); values "
        "of secret-looking names are `***`."
    },
    "body": {
        "help_text": "The parsed body (JSON or form), secret-looking values as `***`; over "
        "16 KiB its first 2,000 characters with `_truncated`; null without a body."
    },
    "status_code": {"help_text": "The HTTP status of the response."},
    "duration_ms": {"help_text": "Time from the request to the response, in milliseconds."},
    "resource": {"help_text": "The resource the request touched; empty if none."},
    "ip": {"help_text": "The client's address (`REMOTE_ADDR`); null if unknown."},
    "restrictions": {
        "help_text": "The grant restrictions applied, per resource (`columns`, "
        "`row_filter`, `masked`); null if none applied."
    },
    "request_id": {
        "help_text": "The request's `X-Request-ID` (the caller's or generated), also in its "
        "log lines."
    },
}
USER_HELP = "The caller's username as it was then; null when anonymous."


class RequestLogSerializer(serializers.ModelSerializer):
    """A stored request (`user` is the username, null when anonymous)."""

    user = serializers.SerializerMethodField(help_text=USER_HELP)

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
        extra_kwargs = LOG_FIELDS

    def get_user(self, obj) -> str | None:
        return obj.username or None


class AccessLogSerializer(serializers.ModelSerializer):
    """Who accessed a resource: one stored request."""

    user = serializers.SerializerMethodField(help_text=USER_HELP)

    class Meta:
        model = RequestLog
        fields = ["user", "at", "method", "path", "query", "status_code"]
        read_only_fields = fields
        extra_kwargs = LOG_FIELDS

    def get_user(self, obj) -> str | None:
        return obj.username or None


class VersionSerializer(serializers.ModelSerializer):
    """One version of a resource."""

    class Meta:
        model = Version
        fields = ["version", "created_at", "source", "rows_added", "rows_changed", "rows_removed"]
        read_only_fields = fields
        extra_kwargs = {
            "version": {"help_text": "The version number, 1 for the first load, then +1."},
            "created_at": {"help_text": "When the version was published."},
            "rows_added": {
                "allow_null": True,
                "help_text": "Rows of keys new in this version; null under a row filter.",
            },
            "rows_changed": {
                "allow_null": True,
                "help_text": "Rows whose values changed (the old row superseded); null under a "
                "row filter.",
            },
            "rows_removed": {
                "allow_null": True,
                "help_text": "Rows no longer current: their key was missing from a load that "
                "replaces a whole scope (the days of a daily sales file), else 0; null under a "
                "row filter.",
            },
        }

    def to_representation(self, instance):
        """Counts over every row are null for a reader under a row filter (`hide_counts`)."""
        body = super().to_representation(instance)
        if self.context.get("hide_counts"):
            body.update(dict.fromkeys(("rows_added", "rows_changed", "rows_removed")))
        return body
