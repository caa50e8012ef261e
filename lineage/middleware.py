"""Gives every request an id, times it, and stores every `/api/` request in the request log.

The id: the caller's `X-Request-ID` when it is a sane token (1-64 of `A-Za-z0-9._-`),
else a new uuid4 hex; it is sent back in `X-Request-ID`, set on `request.request_id`,
carried by every log line written while the request is served (datalake.platform.logging) and
stored in the request log. The time goes to the `/metrics` histogram (datalake.platform.prometheus).
"""

from __future__ import annotations

import logging
import time

from auditlog.middleware import AuditlogMiddleware as _AuditlogMiddleware
from django.core.signals import request_finished
from django.db import DatabaseError
from django.utils import timezone

from datalake.platform.logging import request_id_from, request_id_var
from datalake.platform.prometheus import observe_request
from lineage.audit import body_of, path_of, query_of
from lineage.writer import store_entry

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def client_address(request) -> str | None:
    """The client's address as every log of the portal records it: the peer of the
    connection (`REMOTE_ADDR`), never a header the client writes itself
    (`X-Forwarded-For`). Behind a reverse proxy, the proxy's address (see
    docs/SECURITY.md)."""
    return request.META.get("REMOTE_ADDR") or None


class AuditlogMiddleware(_AuditlogMiddleware):
    """django-auditlog's middleware with the request log's client address: the library's
    own takes the first `X-Forwarded-For` entry, which any client can forge.

    Only around requests that may write (not GET, HEAD, OPTIONS): its context wires a
    signal receiver per request, about a tenth of a cached read's own cost. No read
    saves an audited model (a raw folder a catalog listing discovers is registered by
    `bulk_create`, which auditlog never sees, with or without this context)."""

    SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

    def __call__(self, request):
        if request.method in self.SAFE_METHODS:
            return self.get_response(request)
        return super().__call__(request)

    @staticmethod
    def _get_remote_addr(request):
        from django.conf import settings

        return None if settings.AUDITLOG_DISABLE_REMOTE_ADDR else client_address(request)

    @staticmethod
    def _get_remote_port(request):
        return None  # `X-Forwarded-Port` is the client's word too


logger = logging.getLogger(__name__)


def _forget_request_id(**_kwargs) -> None:
    # After the response is sent: Django's own "Not Found: ..." lines still had the id.
    request_id_var.set(None)


request_finished.connect(_forget_request_id, dispatch_uid="lineage.forget_request_id")


class RequestLogMiddleware:
    """One `RequestLog` row per `/api/` request: anonymous, refused, failed, malformed too.

    Django turns a view's exception into a 500 response inside `get_response`, so
    the entry is written for those as well. The body is read before the view (Django
    keeps it for DRF's parsers).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        request.request_id = request_id_from(request.META.get("HTTP_X_REQUEST_ID"))
        request_id_var.set(request.request_id)
        if not request.path.startswith("/api/"):
            response = self.get_response(request)
        else:
            at = timezone.now()
            body = body_of(request)
            response = self.get_response(request)
            duration_ms = (time.perf_counter() - started) * 1000
            self._store(request, response, at, body, duration_ms)
        response["X-Request-ID"] = request.request_id
        observe_request(request, response.status_code, time.perf_counter() - started)
        return response

    def _store(self, request, response, at, body, duration_ms) -> None:
        user = getattr(request, "user", None)
        known = user is not None and user.is_authenticated
        entry = {
            "at": at,
            "user_id": user.pk if known else None,
            "username": user.get_username() if known else "",
            "method": request.method[:10],
            "path": path_of(request),
            "query": query_of(request),
            "body": body,
            "status_code": response.status_code,
            "duration_ms": round(duration_ms, 3),
            "resource": getattr(request, "audit_resource", "")[:100],
            "ip": client_address(request),
            "restrictions": getattr(request, "audit_restrictions", None),
            "request_id": request.request_id,
        }
        try:
            store_entry(entry, asynchronous=request.method in SAFE_METHODS)
        except DatabaseError:
            logger.exception("Could not store the request log entry of %s", request.path)
