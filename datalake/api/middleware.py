"""Every answer under /api/ is JSON in the error envelope, whatever DEBUG says.

DRF answers its own errors in the envelope (errors.exception_handler). What happens
outside it used to answer Django's HTML: an exception DRF does not handle (a 500, or
a SuspiciousOperation such as a body over DATA_UPLOAD_MAX_MEMORY_SIZE), an unknown
path under DEBUG (the page listing every URL pattern), a POST without its trailing
slash under DEBUG (APPEND_SLASH's RuntimeError). This middleware, just inside the
request log, answers those in the envelope too, and refuses control characters in a
path before any view sees them (PostgreSQL text takes no NUL; no key has one).
"""

from __future__ import annotations

import logging
import re

from django.conf import settings
from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.signals import got_request_exception
from django.http import Http404, JsonResponse
from django.urls import Resolver404, resolve
from django.utils.log import log_response
from rest_framework.response import Response

from datalake.api.errors import server_error

CONTROL = re.compile(r"[\x00-\x1f\x7f]")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The code of a non-DRF error answer, by status (the detail is Django's reason phrase).
CODES = {
    400: "bad_request",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    500: "server_error",
}
NOT_FOUND = "No such path; GET /api/v1/ lists the API's entry points."


def is_api(request) -> bool:
    return request.path.startswith("/api/")


def envelope(status: int, detail: str, code: str | None = None) -> JsonResponse:
    body = {"detail": detail, "code": code or CODES.get(status, "error")}
    return JsonResponse(body, status=status)


class ApiErrorMiddleware:
    """JSON errors under /api/ (see the module); every other path is left to Django."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not is_api(request):
            return self.get_response(request)
        if CONTROL.search(request.path):
            detail = "A path segment holds a control character (NUL, newline, ...)."
            return envelope(400, detail, "invalid_path")
        try:
            request.GET  # noqa: B018 (parsed here: DRF under DEBUG fails on its error)
        except SuspiciousOperation as exc:  # over DATA_UPLOAD_MAX_NUMBER_FIELDS
            return _suspicious(request, exc)
        if request.method not in SAFE_METHODS and _slash_missing(request):
            return envelope(404, f"No such path; did you mean {request.path}/ ?")
        response = self.get_response(request)
        if response.status_code >= 400 and not _is_json(response):
            return _as_envelope(response)
        return response

    def process_exception(self, request, exc):
        """A view's exception DRF did not answer: its status in the envelope, logged as
        Django logs it (DEBUG's technical pages are never rendered for /api/)."""
        if not is_api(request):
            return None
        if isinstance(exc, Http404):
            return envelope(404, NOT_FOUND)
        if isinstance(exc, PermissionDenied):
            response = envelope(403, "You do not have permission to perform this action.")
            log_response("Forbidden (Permission denied): %s", request.path,
                         response=response, request=request, exception=exc)  # fmt: skip
            return response
        if isinstance(exc, SuspiciousOperation):
            return _suspicious(request, exc)
        return uncaught_exception(request, exc)


def uncaught_exception(request, exc) -> JsonResponse:
    """An /api/ exception nothing answered, in the envelope: 503 `database_unavailable`
    (Retry-After) when the database is away, else 500; logged as Django logs it, whatever
    DEBUG says. Call it inside the `except` (server_error reads the exception there):
    process_exception for a view's, and an inner middleware for its own (one that opens
    the connection before any view, whose error Django would render as DEBUG's page)."""
    got_request_exception.send(sender=None, request=request)
    response = server_error(request)  # 503 when the database is away, else 500
    log_response("%s: %s", response.reason_phrase, request.path,
                 response=response, request=request, exception=exc)  # fmt: skip
    return response


def _suspicious(request, exc) -> JsonResponse:
    if isinstance(exc, RequestDataTooBig | TooManyFieldsSent | TooManyFilesSent):
        request._mark_post_parse_error()  # as Django does: the body cannot be read again
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        response = envelope(413, f"The body is over the limit of {limit} bytes.")
    else:
        response = envelope(400, f"Bad request: {exc}")
    security_logger = logging.getLogger(f"django.security.{exc.__class__.__name__}")
    log_response(str(exc), exception=exc, request=request, response=response,
                 level="error", logger=security_logger)  # fmt: skip
    return response


def _slash_missing(request) -> bool:
    """A path that resolves only with a trailing slash (CommonMiddleware would redirect a
    GET, and cannot redirect a POST: a RuntimeError under DEBUG, a lost body otherwise)."""
    if not settings.APPEND_SLASH or request.path_info.endswith("/"):
        return False
    urlconf = getattr(request, "urlconf", None)
    try:
        resolve(request.path_info, urlconf)
        return False
    except Resolver404:
        pass
    try:
        resolve(request.path_info + "/", urlconf)
    except Resolver404:
        return False
    return True


def _is_json(response) -> bool:
    # A DRF Response is rendered by content negotiation: the browsable API's HTML
    # errors are meant for people, and are in the envelope's terms anyway.
    return isinstance(response, Response) or response.get("Content-Type", "").startswith(
        "application/json"
    )


def _as_envelope(response) -> JsonResponse:
    """An HTML error page (Django's own, DEBUG's) as the envelope of its status."""
    status = response.status_code
    detail = NOT_FOUND if status == 404 else f"{response.reason_phrase}."
    answer = envelope(status, detail)
    # Content-Range: a 416 says the resource's size (`bytes */<size>`, RFC 9110 15.5.17).
    for header in ("Retry-After", "Allow", "WWW-Authenticate", "Content-Range"):
        if header in response:
            answer[header] = response[header]
    return answer
