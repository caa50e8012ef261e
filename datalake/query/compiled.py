"""Row queries compiled once per shape: the ORM writes the SQL, later requests reuse it.

Two requests for rows that differ only by their values (another country, the
next cursor) compile to the same SQL with other parameters. Building the
queryset through the FilterSet and compiling it costs more than PostgreSQL
takes to answer a page, so the SQL is kept per *shape* (the resource, the
columns, the operators in the order the queryset applies them, the number of
values of each `in`, the ordering) and executed with the request's values.

The values are prepared the way the ORM prepares lookup values
(`get_prep_value`, then `get_db_prep_value`, `in` lists without duplicates or
None). The first compile of a shape checks that these parameters are exactly
the ORM's own; a shape where they differ is never cached and always goes
through the ORM, so the cache can only be as right as the ORM.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass

from django.db import connection
from django.utils.datastructures import OrderedSet

from datalake.platform import replicas

logger = logging.getLogger(__name__)

NO_PARAM_OPS = frozenset({"isnull", "notnull"})
CACHE_SIZE = 2048


@dataclass(frozen=True)
class Compiled:
    sql: str
    names: tuple[str, ...]  # result columns, in order
    converters: tuple  # (index, converter functions, expression), as the ORM applies them


class ShapeCache:
    """A bounded map shape -> Compiled."""

    def __init__(self, size: int = CACHE_SIZE):
        self.size = size
        self.entries: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def get(self, shape):
        with self.lock:
            found = self.entries.get(shape, KeyError)
            if found is not KeyError:
                self.entries.move_to_end(shape)
            return found

    def put(self, shape, compiled: Compiled | None) -> None:
        with self.lock:
            self.entries[shape] = compiled
            if len(self.entries) > self.size:
                self.entries.popitem(last=False)


def prepared(field, op: str, value) -> tuple:
    """The SQL parameters the ORM makes of `field <op> value`."""
    if op in NO_PARAM_OPS:
        return ()
    if op == "in":
        values = OrderedSet(field.get_prep_value(v) for v in value)
        values.discard(None)
        return tuple(field.get_db_prep_value(v, connection, prepared=True) for v in values)
    return (field.get_db_prep_value(field.get_prep_value(value), connection, prepared=True),)


def compile_queryset(queryset, extra_params: tuple = ()) -> tuple[Compiled, tuple] | None:
    """The queryset's SQL, its result names, converters and parameters; None if empty."""
    from django.core.exceptions import EmptyResultSet

    compiler = queryset.query.get_compiler(using=queryset.db)
    try:
        sql, params = compiler.as_sql()
    except EmptyResultSet:
        return None
    query = queryset.query
    # A `.values()` query selects in the order it names (fields and annotations mixed),
    # as Django's ValuesIterable reads it.
    names = (
        tuple(query.selected)
        if query.selected
        else (*query.extra_select, *query.values_select, *query.annotation_select)
    )
    converters = compiler.get_converters([col for col, _sql, _alias in compiler.select])
    flat = tuple((i, tuple(fns), expression) for i, (fns, expression) in converters.items())
    return Compiled(sql, names, flat), tuple(params) + extra_params


def checked(cache: ShapeCache, shape, mirrored: tuple, build) -> tuple[Compiled, tuple] | None:
    """The compiled SQL of `shape` and the parameters to run it with.

    `mirrored` are the parameters computed without the ORM; `build()` returns the
    queryset. On a miss the ORM compiles it; the result is cached only if the ORM's
    parameters equal the mirrored ones (a request whose values the ORM treats apart, such
    as a bound it drops as always true, is compiled for itself and caches nothing).
    """
    found = cache.get(shape)
    if found is not KeyError:
        return found, mirrored
    result = compile_queryset(build())
    if result is None:
        return None
    compiled, params = result
    same = len(params) == len(mirrored) and all(
        type(a) is type(b) and a == b for a, b in zip(params, mirrored, strict=True)
    )
    if same:
        cache.put(shape, compiled)
    else:  # this request's values only (an out-of-range bound the ORM drops...): not cached
        logger.info(
            "Row query not cached (parameters differ): %s %s: ORM %r, mirrored %r",
            shape[0],
            compiled.sql,
            params,
            mirrored,
        )
    return compiled, params


def planned(sql: str, params) -> dict:
    """The planner's top node for `sql` (EXPLAIN without ANALYZE: nothing runs):
    `Plan Rows` (the rows expected), `Total Cost` (in the planner's units)..."""
    with replicas.reads().cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        return cursor.fetchone()[0][0]["Plan"]


def run(compiled: Compiled, params, suffix: str = "", suffix_params: tuple = ()) -> list[dict]:
    """Execute and return dicts, with the ORM's converters applied (as `.values()`)."""
    db = replicas.reads()
    with db.cursor() as cursor:
        cursor.execute(compiled.sql + suffix, (*params, *suffix_params))
        rows = cursor.fetchall()
    names, converters = compiled.names, compiled.converters
    if not converters:
        return [dict(zip(names, row, strict=True)) for row in rows]
    out = []
    for row in rows:
        row = list(row)
        for i, functions, expression in converters:
            for function in functions:
                row[i] = function(row[i], expression, db)
        out.append(dict(zip(names, row, strict=True)))
    return out
