"""Running a `RowQuery`: PostgreSQL tables through the ORM, raw folders through DuckDB."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import duckdb
from django.conf import settings
from django.db import connection
from django.db.models import F, Q, QuerySet

from datalake.catalog import Entry
from datalake.catalog.rawfiles import load_folder

from .grammar import RowQuery

_counts: dict[tuple, tuple[int, bool, float]] = {}
Q_LOOKUPS = {"eq": "exact", "gt": "gt", "gte": "gte", "lt": "lt", "lte": "lte", "in": "in"}


# -- tables ---------------------------------------------------------------------------


def table_queryset(entry: Entry, version: int | None = None) -> QuerySet:
    """The rows of a table as of `version` (default: the current rows)."""
    qs = entry.model._default_manager.all()
    if not entry.versioning:
        return qs
    if version is None:
        return qs.filter(valid_to__isnull=True)
    return qs.filter(Q(valid_to__isnull=True) | Q(valid_to__gt=version), valid_from__lte=version)


def _q(conjuncts) -> Q:
    q = Q()
    for name, op, value in conjuncts:
        if op in ("isnull", "notnull"):
            q &= Q(**{f"{name}__isnull": op == "isnull"})
        else:
            q &= Q(**{f"{name}__{Q_LOOKUPS[op]}": value})
    return q


def row_filter_q(rows) -> Q:
    """A grant's row filters (OR of ANDs of `column IN values`) as a Q."""
    allowed = Q(pk__in=[])
    for conditions in rows:
        allowed |= Q(**{f"{name}__in": list(values) for name, values in conditions.items()})
    return allowed


class TableBackend:
    def __init__(self, query: RowQuery, version: int | None = None):
        self.query = query
        self.filtered = query.filterset.filter_queryset(table_queryset(query.entry, version))
        if query.restriction.rows is not None:
            self.filtered = self.filtered.filter(row_filter_q(query.restriction.rows))

    def fetch(self, select, offset, limit, after=None, bound=None) -> list[dict]:
        qs = self.filtered
        if after is not None:
            disjunction = Q()
            for conjuncts in after:
                disjunction |= _q(conjuncts)
            qs = qs.filter(disjunction, _q([bound] if bound else []))
        order = [F(n).desc() if desc else F(n).asc() for n, desc in self.query.ordering]
        return list(qs.order_by(*order).values(*select)[offset : offset + limit])

    def count(self) -> tuple[int, bool]:
        """Exact below the limit; above it the planner's estimate (no scan of a huge table).

        Kept for LAKE_COUNT_CACHE_SECONDS per process: a client walking pages asks
        the same count again and again.
        """
        qs = self.filtered.order_by()
        sql, params = qs.query.sql_with_params()
        key = (sql, tuple(map(str, params)))
        cached = _counts.get(key)
        if cached and cached[2] > time.monotonic():
            return cached[0], cached[1]
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            plan = cursor.fetchone()[0]
        estimate = int(plan[0]["Plan"]["Plan Rows"])
        result = (
            (estimate, True) if estimate > settings.LAKE_EXACT_COUNT_LIMIT else (qs.count(), False)
        )
        if len(_counts) > 4096:
            _counts.clear()
        _counts[key] = (*result, time.monotonic() + settings.LAKE_COUNT_CACHE_SECONDS)
        return result


# -- raw files ------------------------------------------------------------------------

SQL_OPS = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_local = threading.local()


def _duck() -> duckdb.DuckDBPyConnection:
    if not hasattr(_local, "con"):
        _local.con = duckdb.connect(":memory:", config={"threads": 1})
    return _local.con


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _naive_utc(value):
    """Raw timestamps are stored as naive UTC; compare them with naive UTC values."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _sql_condition(conjuncts) -> tuple[str, list]:
    parts, params = [], []
    for name, op, value in conjuncts:
        col = ident(name)
        if op == "isnull":
            parts.append(f"{col} IS NULL")
        elif op == "notnull":
            parts.append(f"{col} IS NOT NULL")
        elif op == "in":
            parts.append(f"{col} IN ({', '.join('?' * len(value))})")
            params += [_naive_utc(v) for v in value]
        else:
            parts.append(f"{col} {SQL_OPS[op]} ?")
            params.append(_naive_utc(value))
    return " AND ".join(parts) or "TRUE", params


class FileBackend:
    def __init__(self, query: RowQuery):
        self.query = query
        self.table = load_folder(query.entry.folder)
        self.where, self.params = _sql_condition(query.filters)
        if query.restriction.rows is not None:
            allowed = [
                _sql_condition([(name, "in", list(values)) for name, values in rows.items()])
                for rows in query.restriction.rows
            ]
            self.where += " AND (" + (" OR ".join(f"({s})" for s, _ in allowed) or "FALSE") + ")"
            self.params += [p for _, ps in allowed for p in ps]

    def _run(self, sql: str, params: list):
        cursor = _duck().cursor()
        cursor.register("t", self.table)
        return cursor.execute(sql, params)

    def fetch(self, select, offset, limit, after=None, bound=None) -> list[dict]:
        where, params = self.where, list(self.params)
        if after is not None:
            parts = [_sql_condition(c) for c in after]
            where += " AND (" + (" OR ".join(f"({s})" for s, _ in parts) or "FALSE") + ")"
            params += [p for _, ps in parts for p in ps]
        order = ", ".join(
            f"{ident(n)} DESC NULLS FIRST" if desc else f"{ident(n)} ASC NULLS LAST"
            for n, desc in self.query.ordering
        )
        cols = ", ".join(ident(n) for n in select)
        sql = f"SELECT {cols} FROM t WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?"
        result = self._run(sql, [*params, limit, offset])
        names = [d[0] for d in result.description]
        rows = [dict(zip(names, row, strict=True)) for row in result.fetchall()]
        stamps = [n for n in names if self.query.entry.column(n).type == "timestamp"]
        for row in rows if stamps else ():
            for name in stamps:
                if row[name] is not None:
                    row[name] = row[name].replace(tzinfo=UTC)
        return rows

    def count(self) -> tuple[int, bool]:
        result = self._run(f"SELECT count(*) FROM t WHERE {self.where}", list(self.params))
        return result.fetchone()[0], False


def backend_for(query: RowQuery, version: int | None = None):
    if query.entry.kind == "table":
        return TableBackend(query, version)
    return FileBackend(query)
