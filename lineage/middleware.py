"""Stores every request to `/api/` in the request log, whatever its outcome."""

from __future__ import annotations

import logging
import time

import orjson
from django.db import DatabaseError, connection
from django.utils import timezone

from .audit import body_of, query_of
from .models import RequestLog

COLUMNS = (
    "at", "user_id", "username", "method", "path", "query", "body", "status_code",
    "duration_ms", "resource", "ip", "restrictions",
)  # fmt: skip
INSERT = (
    f"INSERT INTO {RequestLog._meta.db_table} ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(COLUMNS))})"
)


def _json(value) -> str | None:
    return None if value is None else orjson.dumps(value, default=str).decode()


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
        values = [
            at,
            user.pk if known else None,
            user.get_username() if known else "",
            request.method[:10],
            request.path[:2000],
            _json(query_of(request)),
            None if body is None else _json(body),
            response.status_code,
            round(duration_ms, 3),
            getattr(request, "audit_resource", "")[:100],
            request.META.get("REMOTE_ADDR") or None,
            _json(getattr(request, "audit_restrictions", None)),
        ]
        try:
            with connection.cursor() as cursor:  # one INSERT on every request: no ORM overhead
                cursor.execute(INSERT, values)
        except DatabaseError:
            logger.exception("Could not store the request log entry of %s", request.path)
