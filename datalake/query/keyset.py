"""Keyset pagination: the condition "strictly after this row" for any ordering.

Rows are ordered by the requested columns then the key, with PostgreSQL's null
placement (ascending: nulls last; descending: nulls first), which the raw-file
backend reproduces. The condition is a disjunction of conjunctions of
`(column, op, value)` with op among eq, gt, lt, isnull, notnull; each backend
turns it into its own SQL. A leading bound on the first column lets the
database start an index range scan at the cursor.

`columns` is the query (`RowQuery.column`): its order may hold the keyed hash of a
hidden or masked key (an integer column of its own, see `grammar.keyed_ordering`).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation

from django.utils.dateparse import parse_date, parse_datetime

from datalake.errors import Invalid


def _after(name: str, desc: bool, value, nullable: bool) -> list[tuple]:
    """Alternatives for "column strictly after value" in the ordering's direction."""
    if value is None:
        return [(name, "notnull", None)] if desc else []
    alternatives = [(name, "lt" if desc else "gt", value)]
    if nullable and not desc:
        alternatives.append((name, "isnull", None))
    return alternatives


def _equal(name: str, value) -> tuple:
    return (name, "isnull", None) if value is None else (name, "eq", value)


def after_condition(columns, ordering: list[tuple[str, bool]], values: list) -> list[list]:
    """Disjuncts (each a list of conjuncts) selecting the rows after `values`."""
    disjuncts = []
    for i, (name, desc) in enumerate(ordering):
        prefix = [_equal(n, v) for (n, _d), v in zip(ordering[:i], values[:i], strict=True)]
        nullable = columns.column(name).nullable
        disjuncts += [[*prefix, alt] for alt in _after(name, desc, values[i], nullable)]
    return disjuncts


def leading_bound(columns, ordering, values) -> tuple | None:
    """`first >= v` (or `<=`): redundant with the condition, but it is what an index uses."""
    name, desc = ordering[0]
    if values[0] is None or columns.column(name).nullable:
        return None
    return (name, "lte" if desc else "gte", values[0])


def _typed(col_type: str, value):
    if value is None or col_type == "string":
        return value if value is None or isinstance(value, str) else str(value)
    if col_type == "integer" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if col_type == "decimal":
        number = Decimal(str(value))
        if number.is_finite():  # "NaN" and "Infinity" parse, and no column holds them
            return number
    if col_type == "boolean" and isinstance(value, bool):
        return value
    if col_type == "timestamp":
        parsed = parse_datetime(value)
        if parsed is not None and parsed.tzinfo is not None:
            return parsed
    if col_type == "date":
        parsed = parse_date(value)
        if isinstance(parsed, date):
            return parsed
    raise ValueError(value)


def typed_cursor(columns, ordering, values: list) -> list:
    """The cursor's JSON values converted to the columns' types; 400 if they do not fit."""
    try:
        return [
            _typed(columns.column(n).type, v) for (n, _d), v in zip(ordering, values, strict=True)
        ]
    except (ValueError, TypeError, InvalidOperation):
        raise Invalid(
            {"cursor": ["Not a cursor of this query; use `next_cursor` as given."]}
        ) from None
