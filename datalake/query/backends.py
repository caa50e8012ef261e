"""Running a `RowQuery`: PostgreSQL tables through the ORM, raw folders through DuckDB."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import duckdb
from django.conf import settings
from django.db.models import BigIntegerField, Expression, F, Q, QuerySet
from django_filters.constants import EMPTY_VALUES

from accounts.access.masking import ORDER_HEX_DIGITS, column_key, hmac_pads, order_hash
from datalake.catalog import Entry
from datalake.catalog.rawfiles import loaded_folder
from datalake.platform import replicas
from datalake.query import guard, snapshots
from datalake.query.compiled import Compiled, ShapeCache, checked, planned, prepared, run
from datalake.query.grammar import RowQuery

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


class KeyHash(Expression):
    """`masking.order_hash` of a column in PostgreSQL: HMAC-SHA256 of its text (built on
    sha256(), no extension needed), the first 60 bits as a bigint. The keys are bound
    parameters: outer pad, inner pad."""

    output_field = BigIntegerField()

    def __init__(self, column, key: bytes):
        super().__init__(output_field=BigIntegerField())
        self.column = F(column) if isinstance(column, str) else column
        self.key = key

    def get_source_expressions(self):
        return [self.column]

    def set_source_expressions(self, exprs):
        (self.column,) = exprs

    def as_sql(self, compiler, connection):
        sql, params = compiler.compile(self.column)
        outer, inner = hmac_pads(self.key)
        digest = f"sha256(%s || sha256(%s || convert_to(({sql})::text, 'UTF8')))"
        bits = ORDER_HEX_DIGITS * 4
        hex_sql = f"substr(encode({digest}, 'hex'), 1, {ORDER_HEX_DIGITS})"
        return f"('x' || {hex_sql})::bit({bits})::bigint", (outer, inner, *params)


HASH_FIELD = BigIntegerField()


class TableBackend:
    """A table's rows through the ORM and the FilterSet, compiled once per query shape."""

    def __init__(self, query: RowQuery, version: int | None = None, state=None):
        self.query = query
        self.version = version
        self.state_key = tuple(state.sealed()) if state is not None else None
        model = query.entry.model
        self.field = model._meta.get_field
        filterset = query.filterset
        self.filter_terms = [
            (*filterset.operators[name], value)
            for name, value in filterset.form.cleaned_data.items()
            if value not in EMPTY_VALUES
        ]
        if query.restriction.rows is not None:
            self.filter_terms.append(("|", "", query.restriction.rows))
        self.mode = None if not query.entry.versioning else ("v" if version is not None else "cur")
        self._filtered = None

    @property
    def filtered(self) -> QuerySet:
        """The ORM queryset of the filtered rows (built only when a shape is compiled)."""
        if self._filtered is None:
            qs = self.query.filterset.filter_queryset(
                table_queryset(self.query.entry, self.version)
            )
            if self.query.restriction.rows is not None:
                qs = qs.filter(row_filter_q(self.query.restriction.rows))
            self._filtered = qs
        return self._filtered

    def _mirror(self, terms) -> tuple[tuple, tuple]:
        """(shape, parameters) of conditions, in the order the queryset applies them."""
        shape, params = [], []
        for name, op, value in terms:
            if name == "|":  # a restriction's row filters: OR of ANDs of `in`
                for conditions in value:
                    shape.append("|")
                    for column, values in sorted(conditions.items()):
                        self._term(column, "in", values, shape, params)
            else:
                self._term(name, op, value, shape, params)
        return tuple(shape), tuple(params)

    def _term(self, name, op, value, shape, params) -> None:
        hashed = self.query.hashed.get(name)
        field = HASH_FIELD if hashed else self.field(name)
        values = prepared(field, Q_LOOKUPS.get(op, op), value)
        shape.append((name, op, len(values)))
        if hashed and op not in ("isnull", "notnull"):  # the expression's keys, then the value
            params.extend(hmac_pads(self._key(hashed)))
        params.extend(values)

    def _key(self, column: str) -> bytes:
        return column_key(self.query.entry.name, column)

    def _hash_params(self, select) -> tuple:
        """The keys of the keyed hashes selected (SELECT comes before WHERE)."""
        return tuple(
            pad
            for name in select
            if name in self.query.hashed
            for pad in hmac_pads(self._key(self.query.hashed[name]))
        )

    def query_key(self) -> tuple:
        """What decides which rows a page holds, in which order (not the columns shown)."""
        where_shape, where_params = self._mirror(self.filter_terms)
        return (
            self.query.entry.name,
            self.mode,
            where_shape,
            where_params,
            self.query.order_key,
        )

    def state(self, state):
        """The state this backend reads: the one it was asked for."""
        return state

    def _version_params(self) -> tuple:
        """`(valid_to IS NULL OR valid_to > v) AND valid_from <= v`: table_queryset's order."""
        if self.mode != "v":
            return ()
        return prepared(self.field("valid_to"), "gt", self.version) + prepared(
            self.field("valid_from"), "lte", self.version
        )

    def fetch(self, select, offset, limit, after=None, bound=None) -> list[dict]:
        found, base = self._compile(select, after, bound)
        if found is None:  # an empty result set by construction
            return []
        compiled, params = found
        if self.query.cost_guard:  # the statement, less the keyset values: one for all pages
            key = (compiled.sql, base, limit, offset)  # a str keeps its hash: cheap to look up
            guard.check(self.query, compiled.sql + PAGE, (*params, limit, offset), key, offset)
        return run(compiled, params, PAGE, (limit, offset))

    def compiled(self, select, after=None, bound=None) -> tuple[Compiled, tuple] | None:
        """The SQL of the ordered rows (after a keyset position) and its parameters;
        None for an empty result by construction. Pages add LIMIT/OFFSET, exports COPY it."""
        return self._compile(select, after, bound)[0]

    def _compile(self, select, after, bound):
        """(`compiled()`'s answer, the parameters before the keyset condition's)."""
        where_shape, where_params = self._mirror(self.filter_terms)
        after_terms = [t for conjuncts in after or () for t in conjuncts]
        after_shape, after_params = self._mirror(after_terms + ([bound] if bound else []))
        # The OR structure of a keyset condition matters, not only its terms.
        after_shape = (tuple(len(c) for c in after or ()), after_shape, bool(bound))
        ordering = tuple(self.query.ordering)
        shape = (
            "rows",
            self.query.entry,
            self.mode,
            where_shape,
            after_shape,
            tuple(select),
            ordering,
        )
        base = self._hash_params(select) + self._version_params() + where_params
        found = checked(
            _shapes, shape, base + after_params, lambda: self._page_queryset(select, after, bound)
        )
        return found, base

    def _page_queryset(self, select, after, bound) -> QuerySet:
        qs = self.filtered
        if self.query.hashed:
            hashes = {n: KeyHash(c, self._key(c)) for n, c in self.query.hashed.items()}
            qs = qs.annotate(**hashes)
        if after is not None:
            disjunction = Q()
            for conjuncts in after:
                disjunction |= _q(conjuncts)
            qs = qs.filter(disjunction, _q([bound] if bound else []))
        order = [F(n).desc() if desc else F(n).asc() for n, desc in self.query.ordering]
        return qs.order_by(*order).values(*select)

    def count(self) -> tuple[int, bool]:
        """Exact below the limit; above it the planner's estimate (no scan of a huge table).

        Kept for LAKE_COUNT_CACHE_SECONDS per process: a client walking pages asks
        the same count again and again.
        """
        where_shape, where_params = self._mirror(self.filter_terms)
        shape = ("count", self.query.entry, self.mode, where_shape)
        params = self._version_params() + where_params
        key = (shape, params, self.state_key)  # a new version: counted again
        cached = _counts.get(key)
        if cached and cached[2] > time.monotonic():
            return cached[0], cached[1]
        found = checked(_shapes, shape, params, lambda: self.filtered.order_by().values("pk"))
        if found is None:
            return 0, False
        compiled, params = found
        estimate = int(planned(compiled.sql, params)["Plan Rows"])
        if estimate > settings.LAKE_EXACT_COUNT_LIMIT:
            result = (estimate, True)
        else:
            with replicas.reads().cursor() as cursor:
                cursor.execute(f"SELECT count(*) FROM ({compiled.sql}) counted", params)
                result = (cursor.fetchone()[0], False)
        if len(_counts) > 4096:
            _counts.clear()
        _counts[key] = (*result, time.monotonic() + settings.LAKE_COUNT_CACHE_SECONDS)
        return result


_shapes = ShapeCache()
PAGE = " LIMIT %s OFFSET %s"


# -- raw files ------------------------------------------------------------------------

SQL_OPS = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_local = threading.local()


def _duck() -> duckdb.DuckDBPyConnection:
    if not hasattr(_local, "con"):
        _local.con = duckdb.connect(":memory:", config={"threads": 1})
        _local.con.create_function(
            "lake_keyhash", _keyhash, [duckdb.sqltype("VARCHAR")] * 2, duckdb.sqltype("BIGINT")
        )
    return _local.con


def _keyhash(key_hex: str, text: str) -> int:
    """`masking.order_hash` for DuckDB (NULLs never reach it: DuckDB answers NULL)."""
    return order_hash(bytes.fromhex(key_hex), text)


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
    """A folder's rows through DuckDB, over the Arrow table of its files; `files`: only
    those files (a walk's snapshot of the folder)."""

    def __init__(self, query: RowQuery, files: frozenset | None = None):
        self.query = query
        self.signature, self.table = loaded_folder(query.entry.folder)
        self.files = files
        conditions = list(query.filters)
        if files is not None:
            conditions.append(("_file", "in", sorted(files)))
        self.where, self.params = _sql_condition(conditions)
        if query.restriction.rows is not None:
            allowed = [
                _sql_condition([(name, "in", list(values)) for name, values in rows.items()])
                for rows in query.restriction.rows
            ]
            self.where += " AND (" + (" OR ".join(f"({s})" for s, _ in allowed) or "FALSE") + ")"
            self.params += [p for _, ps in allowed for p in ps]

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB cursor where `t` is the folder's table."""
        cursor = _duck().cursor()
        cursor.register("t", self.table)
        return cursor

    def run(self, sql: str, params: list):
        return self.cursor().execute(sql, params)

    def _source(self) -> tuple[str, list]:
        """The table, with the keyed hashes of the hidden or masked key columns if any."""
        if not self.query.hashed:
            return "t", []
        hashes = [
            (f"lake_keyhash(?, CAST({ident(column)} AS VARCHAR)) AS {ident(name)}",
             column_key(self.query.entry.name, column).hex())
            for name, column in self.query.hashed.items()
        ]  # fmt: skip
        sql = ", ".join(expression for expression, _key in hashes)
        return f"(SELECT *, {sql} FROM t) t", [key for _expression, key in hashes]

    def select_sql(self, select, after=None) -> tuple[str, list]:
        """The SQL of the ordered rows (after a keyset position) and its parameters."""
        source, source_params = self._source()
        where, params = self.where, [*source_params, *self.params]
        if after is not None:
            parts = [_sql_condition(c) for c in after]
            where += " AND (" + (" OR ".join(f"({s})" for s, _ in parts) or "FALSE") + ")"
            params += [p for _, ps in parts for p in ps]
        order = ", ".join(
            f"{ident(n)} DESC NULLS FIRST" if desc else f"{ident(n)} ASC NULLS LAST"
            for n, desc in self.query.ordering
        )
        cols = ", ".join(ident(n) for n in select)
        return f"SELECT {cols} FROM {source} WHERE {where} ORDER BY {order}", params

    def fetch(self, select, offset, limit, after=None, bound=None) -> list[dict]:
        sql, params = self.select_sql(select, after)
        result = self.run(sql + " LIMIT ? OFFSET ?", [*params, limit, offset])
        names = [d[0] for d in result.description]
        rows = [dict(zip(names, row, strict=True)) for row in result.fetchall()]
        stamps = [n for n in names if self.query.column(n).type == "timestamp"]
        for row in rows if stamps else ():
            for name in stamps:
                if row[name] is not None:
                    row[name] = row[name].replace(tzinfo=UTC)
        return rows

    def state(self, state):
        """The folder's state as this backend read it (a walk's pinned files as asked)."""
        if self.files is not None:
            return state
        read = snapshots.folder_state(self.query.entry, self.signature)
        snapshots.remember(self.query.entry, read, self.signature)
        return read

    def count(self) -> tuple[int, bool]:
        result = self.run(f"SELECT count(*) FROM t WHERE {self.where}", list(self.params))
        return result.fetchone()[0], False


def backend_for(query: RowQuery, version: int | None = None, files=None, state=None):
    """The backend of `query` at `version`; `state` (a `DataVersion`) keys its counts."""
    if query.entry.kind == "table":
        return TableBackend(query, version, state)
    return FileBackend(query, files)
