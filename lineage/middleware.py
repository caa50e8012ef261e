"""Stores every request to `/api/` in the request log, whatever its outcome."""

from __future__ import annotations

import logging
import time

from django.db import DatabaseError
from django.utils import timezone

from .audit import body_of, query_of
from .models import RequestLog

logger = logging.getLogger(__name__)


class RequestLogMiddleware:
    """One `RequestLog` row per `/api/` request: anonymous, refused, failed, malformed too.

    Django turns a view's exception into a 500 response inside `get_response`, so
    the entry is written for those as well. The body is read before the view (Django
    keeps it for DRF's parsers).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith("/api/"):
            return self.get_response(request)
        started, at = time.perf_counter(), timezone.now()
        body = body_of(request)
        response = self.get_response(request)
        duration_ms = (time.perf_counter() - started) * 1000
        self._store(request, response, at, body, duration_ms)
        return response

    def _store(self, request, response, at, body, duration_ms) -> None:
        user = getattr(request, "user", None)
        known = user is not None and user.is_authenticated
        try:
            RequestLog.objects.create(
                at=at,
                user_id=user.pk if known else None,
                username=user.get_username() if known else "",
                method=request.method,
                path=request.path[:2000],
                query=query_of(request),
                body=body,
                status_code=response.status_code,
                duration_ms=round(duration_ms, 3),
                resource=getattr(request, "audit_resource", "")[:100],
                ip=request.META.get("REMOTE_ADDR") or None,
                restrictions=getattr(request, "audit_restrictions", None),
            )
        except DatabaseError:
            logger.exception("Could not store the request log entry of %s", request.path)
