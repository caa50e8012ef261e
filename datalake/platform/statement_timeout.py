"""A time limit on every SQL statement an API request runs (`API_STATEMENT_TIMEOUT_MS`).

One request must not hold a database backend (and a web worker) for minutes: under
`/api/`, the request's connection gets PostgreSQL's `statement_timeout` for the
request's duration. A statement past it is cancelled by the server; the API answers
503 `query_timeout` in the error envelope (`is_statement_timeout`, used by
`datalake.api.errors`), never a 500.

Guarantees:
- set before the request's first query (the connection is opened here if need be),
  again on any connection opened during the request (a reconnect after a failed
  health check), session-level so that a transaction rolled back inside the request
  does not undo it;
- a database that cannot be reached here answers 503 `database_unavailable` in the
  envelope, DEBUG or not (`datalake.api.middleware.uncaught_exception`);
- one statement at most per request, most requests none: the value a connection holds
  is remembered with it, so a thread's persistent connection (`CONN_MAX_AGE`) serving
  API request after API request is set once. A non-API request on a connection that
  holds the limit resets it first, so no limit reaches a later non-API request; a
  connection whose reset fails is closed instead of being reused. Where the request's
  connection is already inside a transaction (a test's), whose rollback would undo the
  setting, it is set and reset around each request instead;
- other connections are untouched: Celery workers, management commands and the
  request log's writer thread (its own connection) keep the server's setting.

Behind a pooler in transaction mode (PgBouncer), a session `SET` would leak to other
clients: there set `API_STATEMENT_TIMEOUT_MS=0` and give the web's role its own
`statement_timeout` (`ALTER ROLE ... SET statement_timeout = '5s'`).
"""

from __future__ import annotations

import logging
import weakref

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.backends.signals import connection_created
from django.dispatch import receiver

log = logging.getLogger(__name__)
_ATTR = "_api_statement_timeout_ms"


def is_statement_timeout(exc: BaseException | None) -> bool:
    """True for a database error that is PostgreSQL cancelling a statement."""
    from psycopg import errors

    return isinstance(exc, DatabaseError) and isinstance(exc.__cause__, errors.QueryCanceled)


# What each open connection's session holds, by the driver's connection object (a new
# one after a reconnect starts from the server's default): milliseconds, or absent.
_held: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _apply(conn, ms: int) -> None:
    with conn.cursor() as cursor:
        cursor.execute("SELECT set_config('statement_timeout', %s, false)", [f"{ms}ms"])
    if not conn.in_atomic_block:  # committed at once: the session keeps it
        _held[conn.connection] = ms


@receiver(connection_created)
def _on_connect(sender, connection, **kwargs):
    """A connection opened while an API request is being served gets its limit too."""
    ms = getattr(connection, _ATTR, None)
    if ms:
        _apply(connection, ms)


def _holds(ms) -> bool:
    raw = connection.connection
    return raw is not None and _held.get(raw) == ms and not connection.in_atomic_block


class StatementTimeoutMiddleware:
    """`statement_timeout` = API_STATEMENT_TIMEOUT_MS for the queries of /api/ requests."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        ms = settings.API_STATEMENT_TIMEOUT_MS
        if not ms or not request.path.startswith("/api/"):
            if connection.connection is not None and _held.get(connection.connection):
                _reset(at_once=True)  # an API request's limit, not this request's
            return self.get_response(request)
        setattr(connection, _ATTR, ms)
        kept = False
        try:
            try:
                connection.ensure_connection()  # a new connection is limited by the signal
                if not _holds(ms):
                    _apply(connection, ms)
                kept = _holds(ms)
            except DatabaseError as exc:
                # Before any view: answered here as a view's would be (503 with Retry-After
                # when the database is away), not by DEBUG's page.
                from datalake.api.middleware import uncaught_exception

                return uncaught_exception(request, exc)
            return self.get_response(request)
        finally:
            setattr(connection, _ATTR, None)
            if not kept or connection.in_atomic_block:
                _reset()


def _reset(at_once: bool = False) -> None:
    raw = connection.connection
    if raw is None:
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("RESET statement_timeout")
        _held.pop(raw, None)
    except DatabaseError:
        # A broken connection, or one left in a failed transaction: not reused with the limit.
        _held.pop(raw, None)
        if at_once and not connection.in_atomic_block:
            log.warning("statement_timeout not reset; the connection is closed")
            connection.close()  # the request opens a new one, without the limit
        else:
            log.warning("statement_timeout not reset; the connection is closed after the request")
            connection.close_at = 0
