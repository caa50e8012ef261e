"""Prepared statements for the few statements that every request runs.

Django turns psycopg's prepared statements off (`prepare_threshold` None) so that
connection poolers in transaction mode keep working, and binds parameters on the
client, so PostgreSQL parses and plans every statement anew. For the token lookup
(with its grants, a join and a sub-select) planning costs more than running it.
`prepared_cursor()` runs such statements as server-side prepared statements,
planned once per connection; everything else is left as Django does it.

The settings give the connection a `prepare_threshold` so high that psycopg
never prepares by itself: only what goes through here is prepared. Behind a
pooler that cannot keep prepared statements (PgBouncer in transaction mode
before 1.21), set `DB_PREPARED_STATEMENTS=false`.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.db.backends.postgresql.base import ServerBindingCursor


class PreparingCursor(ServerBindingCursor):
    """Server-side binding, and every statement prepared (psycopg's `prepare=True`)."""

    def execute(self, query, params=None, *, prepare=None, binary=False):
        return super().execute(query, params, prepare=True, binary=binary)


def prepared_cursor(db=None):
    """A Django cursor (health check, error wrapping, execute wrappers) that prepares.

    What `connection.cursor()` does, with a preparing psycopg cursor in place of
    Django's client-side binding one. `db`: another connection (a read replica's).
    """
    db = db or connection
    if not settings.DB_PREPARED_STATEMENTS:
        return db.cursor()
    db.close_if_health_check_failed()
    db.ensure_connection()
    with db.wrap_database_errors:
        return db._prepare_cursor(PreparingCursor(db.connection))


def first_row(sql: str, params) -> tuple | None:
    """The one row of a request's first statement (the token lookup), prepared.

    It is the connection's health check too. Django's (`CONN_HEALTH_CHECKS`) costs a
    `SELECT 1` round trip before the first query of every request; here the statement
    runs at once on the persistent connection and, if the server dropped it (a restart,
    a terminated backend), runs once more on a new connection. Its success stands for
    the check: the request's later queries skip Django's.
    """
    for attempt in (1, 2):
        if connection.connection is not None:
            connection.health_check_done = True  # this statement is the check
        try:
            with prepared_cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchone()
        except (InterfaceError, OperationalError):
            if attempt == 2 or connection.in_atomic_block or connection.is_usable():
                raise  # not a dropped connection: the error is the statement's
            connection.close()
    return None  # not reached


# Tables that every merge updates in place (upserts, closed entries): their dead rows
# pile up between merges.
MERGE_MAINTAINED = (
    "metrics_product_day",
    "metrics_user_type_day",
    "metrics_product_total",
    "metrics_user_type_total",
    "metrics_minute",
    "search_entries",
    "transactions",
)
_last_vacuum = {"at": 0.0}


def vacuum_stale(tables=MERGE_MAINTAINED, *, every: float = 0.0) -> list[str]:
    """VACUUM (ANALYZE) those of `tables` whose dead rows passed a fifth of their live ones.

    What autovacuum does, done by the merging process itself after its commit:
    merges that upsert aggregates row by row outrun autovacuum's naptime (or find it
    off), and an aggregate updated by every merge then grows many times its size and
    falls out of the cache. Only outside a transaction (VACUUM cannot run inside
    one); at most once per `every` seconds in this process.
    """
    now = time.monotonic()
    if not connection.get_autocommit() or now - _last_vacuum["at"] < every:
        return []
    _last_vacuum["at"] = now
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_stat_user_tables WHERE relname = ANY(%s) "
            "AND n_dead_tup > greatest(1000, 0.2 * n_live_tup)",
            [list(tables)],
        )
        stale = [name for (name,) in cursor.fetchall()]
        for name in stale:  # never waiting behind a merge's lock, nor making one wait
            cursor.execute(f'VACUUM (ANALYZE, SKIP_LOCKED) "{name}"')
    return stale
