from rest_framework import serializers

from datalake.api.bounds import RANGE_TEXT
from datalake.api.filtering import parse_instant
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


class VerifyParams(serializers.Serializer):
    since = serializers.CharField(
        required=False,
        help_text="Verify from the newest checkpoint at or before this date or timestamp "
        "(default: from the start of the chain).",
    )
    until = serializers.CharField(
        required=False,
        help_text="Verify up to the first checkpoint at or after this date or timestamp "
        "(default: to the chain's end).",
    )

    def _instant(self, value: str, *, end: bool):
        try:
            return parse_instant(value, end=end)
        except ValueError:
            raise serializers.ValidationError(
                f"Give a date (YYYY-MM-DD) or an ISO 8601 timestamp, {RANGE_TEXT}."
            ) from None

    def validate_since(self, value):
        return self._instant(value, end=False)

    def validate_until(self, value):
        return self._instant(value, end=True)


class FindingSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=["hash_mismatch", "missing", "truncated", "bad_checkpoint"],
        help_text="`hash_mismatch`: a request or a checkpoint differs from what was sealed "
        "(a body hidden behind a redaction marker without a signed redaction record too); "
        "`missing`: seals or sealed requests deleted, or stored requests neither sealed nor "
        "queued (`sequence` null); `truncated`: the newest sealed requests are gone; "
        "`bad_checkpoint`: a checkpoint or redaction file unreadable or wrongly signed.",
    )
    sequence = serializers.IntegerField(
        allow_null=True, help_text="The chain's sequence where it was found (the first of a run)."
    )
    request_id = serializers.CharField(
        allow_null=True, help_text="The request's `X-Request-ID`, when the request is there."
    )
    detail = serializers.CharField(help_text="What was found, in words.")


class VerifySerializer(serializers.Serializer):
    ok = serializers.BooleanField(help_text="True when nothing was found.")
    complete = serializers.BooleanField(
        help_text="False when the range held more than the endpoint walks at once "
        "(`AUDIT_VERIFY_MAX_ROWS`): verify the rest with `since` or `verify_audit`."
    )
    verified_through = serializers.IntegerField(
        help_text="The sequence up to which the chain verified with no finding."
    )
    anchored_through = serializers.IntegerField(
        help_text="The last checkpoint the chain matched: what lies after it is sealed but "
        "not yet under a signature."
    )
    start = serializers.IntegerField(
        help_text="The trusted link the walk began after (0: the chain's start; else a "
        "checkpoint or a retention cut)."
    )
    rows = serializers.IntegerField(help_text="Seals walked.")
    checkpoints = serializers.IntegerField(help_text="Checkpoints compared with the chain.")
    redacted = serializers.IntegerField(
        help_text="Requests whose body was redacted (checked by the body's kept digest)."
    )
    findings = FindingSerializer(many=True, help_text="What was found (at most 1,000).")
    findings_total = serializers.IntegerField(help_text="All findings, listed or not.")
    unsealed = serializers.IntegerField(help_text="Stored requests not sealed yet.")
    oldest_unsealed_seconds = serializers.FloatField(
        allow_null=True, help_text="How long the oldest of them has waited, in seconds."
    )
