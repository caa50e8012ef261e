"""Errors as JSON with `detail` (a sentence) and `code` (a stable string)."""

from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from datalake import errors as domain


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the state of the resource."
    default_code = "conflict"

    def __init__(self, detail=None, code=None):
        super().__init__(detail, code)
        self.code = code or self.default_code


class Gone(exceptions.APIException):
    status_code = status.HTTP_410_GONE
    default_detail = domain.Gone.default_detail
    default_code = domain.Gone.default_code

    def __init__(self, detail=None, code=None):
        super().__init__(detail, code)
        self.code = code or self.default_code


class TooManyJobs(exceptions.APIException):
    """429: the caller already has as many jobs of a kind running as it may."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_detail = "You have too many jobs running; wait for one to end."
    default_code = "too_many_jobs"

    def __init__(self, detail=None, code=None):
        super().__init__(detail, code)
        self.code = code or self.default_code


def _messages(detail, prefix: str, into: dict) -> dict:
    """Collect `detail` into `into` as {dotted.path: [str, ...]}: a nested serializer's
    errors (a report's `params`, a list of objects) name their field, never a repr."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            _messages(value, f"{prefix}.{key}" if prefix else str(key), into)
    elif isinstance(detail, list) and any(isinstance(m, (dict, list)) for m in detail):
        for index, value in enumerate(detail):
            if value:  # DRF puts {} for the items of a list that were valid
                _messages(value, f"{prefix}.{index}" if prefix else str(index), into)
    elif detail not in (None, "", []):  # an empty list or message says nothing
        messages = detail if isinstance(detail, list) else [detail]
        into.setdefault(prefix or "non_field_errors", []).extend(str(m) for m in messages)
    return into


def _flatten(detail) -> dict:
    """Per-field messages as {field: [str, ...]}; nested fields as `outer.inner`; never
    empty (the envelope's `detail` is its first message)."""
    return _messages(detail, "", {}) or {"non_field_errors": ["Invalid input."]}


class QuotaExceeded(exceptions.APIException):
    """429 with `Retry-After` (DRF's handler writes the header from `wait`)."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_detail = domain.QuotaExceeded.default_detail
    default_code = domain.QuotaExceeded.default_code

    def __init__(self, detail=None, code=None):
        super().__init__(detail, code)
        self.code = code or self.default_code
        self.wait = None


# Each domain error (datalake.errors) as the DRF exception of its HTTP status.
_DOMAIN_STATUS = {
    domain.NotFound: exceptions.NotFound,
    domain.AccessDenied: exceptions.PermissionDenied,
    domain.Invalid: exceptions.ValidationError,
    domain.Conflict: Conflict,
    domain.Gone: Gone,
    domain.TooManyJobs: TooManyJobs,
    domain.QuotaExceeded: QuotaExceeded,
}


class Unavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = domain.Unavailable.default_detail
    default_code = domain.Unavailable.default_code


_DOMAIN_STATUS[domain.Unavailable] = Unavailable


def _from_domain(exc: domain.DomainError):
    for cls in type(exc).__mro__:
        if cls in _DOMAIN_STATUS:
            api_exc = _DOMAIN_STATUS[cls](exc.detail, exc.code)
            if isinstance(api_exc, exceptions.ValidationError):
                api_exc.default_code = exc.code  # the envelope's `code`
            else:
                api_exc.code = exc.code
            api_exc.extra = exc.extra
            if getattr(exc, "retry_after", None):  # quotas, a follower behind
                api_exc.wait = exc.retry_after
            return api_exc
    return exceptions.APIException(exc.detail, exc.code)


def _as_drf(exc):
    """Domain errors, and Django's Http404 and PermissionDenied, as DRF's own
    exceptions, so that their `code` is DRF's (`not_found`, `permission_denied`) like
    every other 404 and 403."""
    from django.core.exceptions import PermissionDenied
    from django.http import Http404

    if isinstance(exc, domain.DomainError):
        return _from_domain(exc)

    if isinstance(exc, Http404):
        # Django's text names the model class; say what a client can act on instead.
        return exceptions.NotFound("No such object, or not one you may see.")
    if isinstance(exc, PermissionDenied):
        return exceptions.PermissionDenied(*exc.args)
    return exc


def statement_timeout_response() -> Response:
    """A statement cancelled past API_STATEMENT_TIMEOUT_MS: the query costs too much now."""
    detail = (
        "The query took longer than this API allows and was cancelled; narrow it (filters, "
        "a later date, more of an id) or retry in a few seconds."
    )
    response = Response({"detail": detail, "code": "query_timeout"}, status=503)
    response["Retry-After"] = "5"
    return response


def exception_handler(exc, context):
    from datalake.platform.statement_timeout import is_statement_timeout

    if is_statement_timeout(exc):
        set_rollback()
        return statement_timeout_response()
    exc = _as_drf(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    _envelope(exc, response)
    response.data.update(getattr(exc, "extra", None) or {})  # a domain error's own fields
    return response


def _envelope(exc, response) -> None:
    """`response.data` as {detail, code} (and `errors` for per-field messages)."""
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        names = ", ".join(k for k in errors if k != "non_field_errors")
        first = next(iter(errors.values()))[0]
        sentence = f"Invalid {names}: {first}" if names else first
        # `invalid`, or the code of a ValidationError subclass (search's `query_too_broad`).
        response.data = {"detail": sentence, "code": exc.default_code, "errors": errors}
        return
    code = getattr(exc, "code", None) or getattr(exc, "default_code", "error")
    detail = getattr(exc, "detail", str(exc))
    if isinstance(detail, (dict, list)):  # never a repr: the first message, and all of them
        errors = _flatten(detail)
        first = next(iter(errors.values()), [""])[0]
        response.data = {"detail": first, "code": code, "errors": errors}
    else:
        response.data = {"detail": str(detail), "code": getattr(detail, "code", code) or code}


def error_response(detail: str, code: str, status_code: int) -> Response:
    return Response({"detail": detail, "code": code}, status=status_code)


class ErrorSerializer(serializers.Serializer):
    """Every error body: a sentence to act on, and a stable code."""

    detail = serializers.CharField(help_text="A sentence a person can act on.")
    code = serializers.CharField(help_text="A stable machine string, e.g. `not_found`.")


def not_found(request, exception=None):
    """404 outside any view (no URL matched): JSON under /api/, Django's page elsewhere."""
    from django.http import JsonResponse
    from django.views.defaults import page_not_found

    if request.path.startswith("/api/"):
        body = {
            "detail": "No such path; GET /api/v1/ lists the API's entry points.",
            "code": "not_found",
        }
        return JsonResponse(body, status=404)
    return page_not_found(request, exception)


def server_error(request):
    """500 outside DRF's handling: JSON under /api/, Django's page elsewhere.

    The database unreachable (restarted, failing over, out of connections) is not a bug
    of the request: 503 `database_unavailable` with Retry-After, so that clients and
    load balancers retry. Django calls this handler inside its `except`, so the
    exception is at hand.
    """
    import sys

    from django.db import InterfaceError, OperationalError
    from django.http import HttpResponse, JsonResponse
    from django.views.defaults import server_error as django_server_error

    from datalake.platform.statement_timeout import is_statement_timeout

    if is_statement_timeout(sys.exc_info()[1]) and request.path.startswith("/api/"):
        response = JsonResponse(statement_timeout_response().data, status=503)
        response["Retry-After"] = "5"
        return response
    if isinstance(sys.exc_info()[1], (OperationalError, InterfaceError)):
        detail = "The database is unavailable for a moment; retry in a few seconds."
        if request.path.startswith("/api/"):
            response = JsonResponse({"detail": detail, "code": "database_unavailable"}, status=503)
        else:
            response = HttpResponse(detail, status=503, content_type="text/plain")
        response["Retry-After"] = "5"
        return response
    if request.path.startswith("/api/"):
        body = {"detail": "Internal error; it was logged.", "code": "server_error"}
        return JsonResponse(body, status=500)
    return django_server_error(request)
