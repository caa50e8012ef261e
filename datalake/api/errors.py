"""Errors as JSON with `detail` (a sentence) and `code` (a stable string)."""

from django.http import Http404
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the state of the resource."
    default_code = "conflict"

    def __init__(self, detail=None, code=None):
        super().__init__(detail, code)
        self.code = code or self.default_code


def _flatten(detail) -> dict:
    """Per-field messages as {field: [str, ...]}."""
    if isinstance(detail, dict):
        return {k: [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in detail.items()}
    return {
        "non_field_errors": [str(m) for m in (detail if isinstance(detail, list) else [detail])]
    }


def exception_handler(exc, context):
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        names = ", ".join(k for k in errors if k != "non_field_errors")
        first = next(iter(errors.values()))[0]
        sentence = f"Invalid {names}: {first}" if names else first
        response.data = {"detail": sentence, "code": "invalid", "errors": errors}
        return response
    if isinstance(exc, Http404):  # DRF's lookups raise it bare (a pk that is no number)
        exc = exceptions.NotFound(str(exc) or None)
    code = getattr(exc, "code", None) or getattr(exc, "default_code", "error")
    detail = getattr(exc, "detail", str(exc))
    if isinstance(detail, (dict, list)):
        response.data = {"detail": str(detail), "code": code}
    else:
        response.data = {"detail": str(detail), "code": getattr(detail, "code", code) or code}
    return response


def error_response(detail: str, code: str, status_code: int) -> Response:
    return Response({"detail": detail, "code": code}, status=status_code)


class ErrorSerializer(serializers.Serializer):
    """Every error body: a sentence to act on, and a stable code."""

    detail = serializers.CharField()
    code = serializers.CharField()


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
