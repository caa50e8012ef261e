import django_filters as df

from datalake.api.filtering import SinceFilter, UntilFilter
from lineage.models import RequestLog


class AccessLogFilter(df.FilterSet):
    user = df.CharFilter(field_name="username", help_text="Username.")
    since = SinceFilter(field_name="at", help_text="From this date or timestamp (inclusive).")
    until = UntilFilter(field_name="at", help_text="Up to this date or timestamp (inclusive).")

    class Meta:
        model = RequestLog
        fields = []


class RequestLogFilter(AccessLogFilter):
    resource = df.CharFilter(field_name="resource", help_text="Resource name.")
    method = df.CharFilter(field_name="method", lookup_expr="iexact", help_text="HTTP method.")
    status_code = df.NumberFilter(field_name="status_code", help_text="HTTP status code.")
    request_id = df.CharFilter(
        field_name="request_id",
        help_text="The request's id (its `X-Request-ID` response header, as in the log lines).",
    )
