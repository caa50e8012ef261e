"""The cost guard: a rows query the planner expects to cost too much is refused before it runs.

The estimate is the planner's total cost (EXPLAIN, no ANALYZE: nothing runs) of the
exact page statement the table backend is about to run: its filters, the grant's row
filters, the ordering, the keyset condition of a cursor (or of a page whose start
`PageStarts` knows) and its LIMIT/OFFSET. Above `LAKE_QUERY_MAX_COST` the request is a
400 `query_too_expensive` with the estimate, the limit and what to change (`hints`):
a filter on an indexed column, a cursor instead of a deep `page=`, an order by an
indexed column. Staff may pass `cost_guard=off` (RowQuery.cost_guard); 0 turns the
guard off for everyone.

Estimates are kept per process (`_costs`, bounded, a minute each: tables grow), keyed
by the statement's SQL, its filter values, LIMIT and OFFSET, so page 1 asked again
costs one dict lookup (~3 us). A keyset page's cursor values are not in the key: the
cursor pages of one query are the same index range scan, estimated once a minute (at
the first the process serves), not at every page of a walk.

Raw-file folders are not guarded: DuckDB reads a folder into memory and scans it
whole whatever the query; the folder's size, not the query, bounds the cost.
"""

from __future__ import annotations

import logging
import time
from functools import cache

from django.conf import settings

from datalake.catalog import Entry
from datalake.errors import Invalid
from datalake.query.compiled import ShapeCache, planned
from datalake.query.grammar import KEYHASH, RowQuery

logger = logging.getLogger(__name__)
_costs = ShapeCache(size=4096)  # key -> (cost, until when it is kept)
KEEP_SECONDS = 60.0  # a table grows: an estimate is made again after this


class QueryTooExpensive(Invalid):
    """400 `query_too_expensive`: `extra` holds the estimate, the limit and the hints."""

    default_code = "query_too_expensive"


def check(query: RowQuery, sql: str, params: tuple, key, offset: int) -> None:
    """Raise QueryTooExpensive when the planner's cost of `sql` is above the limit."""
    limit = settings.LAKE_QUERY_MAX_COST
    if not limit:
        return
    found = _costs.get(key)
    if found is KeyError or found[1] < time.monotonic():
        found = (planned(sql, params)["Total Cost"], time.monotonic() + KEEP_SECONDS)
        _costs.put(key, found)
    cost = found[0]
    if cost <= limit:
        return
    hints = hints_for(query, offset)
    logger.warning(
        "Rows query refused by the cost guard: %s, estimated cost %.0f > %s",
        query.entry.name,
        cost,
        limit,
        extra={
            "resource": query.entry.name,
            "estimated_cost": cost,
            "max_cost": limit,
            "page": query.page if query.cursor is None else None,
            "offset": offset,
        },
    )
    if query.restriction.rows is not None:
        # The estimate counts rows outside the caller's row filter (the size of the
        # table, which the catalog hides from them): only the limit is said.
        raise QueryTooExpensive(
            f"This query is estimated to cost more than the limit of {limit:,.0f}. "
            + " ".join(hints),
            extra={"max_cost": limit, "hints": hints},
        )
    raise QueryTooExpensive(
        f"This query is estimated to cost {cost:,.0f}, above the limit of {limit:,.0f}. "
        + " ".join(hints),
        extra={"estimated_cost": round(cost, 2), "max_cost": limit, "hints": hints},
    )


def hints_for(query: RowQuery, offset: int) -> list[str]:
    """What would make this query cheap, in the caller's terms (columns it may use)."""
    restriction = query.restriction
    usable = [
        n
        for n in indexed_columns(query.entry)
        if not restriction.hides(n) and n not in restriction.masked
    ]
    hints = []
    if offset and query.cursor is None:
        skipped = (query.page - 1) * query.page_size
        hints.append(
            f"Walk with `cursor=<next_cursor>` from page 1 instead of `page={query.page}` "
            f"(an offset of {skipped:,} rows that must be read and skipped)."
        )
    leading = query.ordering_names[0]
    if leading not in usable and not leading.startswith(KEYHASH):
        shown = ", ".join(usable)
        hints.append(f"Order by an indexed column ({shown}) rather than `{leading}`.")
    filtered = {name for name, _op, _value in query.filters}
    if filtered & set(usable):
        hints.append(f"Narrow the filter on {', '.join(sorted(filtered & set(usable)))}.")
    else:
        hints.append(f"Add a filter on an indexed column: {', '.join(usable)}.")
    return hints


@cache
def indexed_columns(entry: Entry) -> list[str]:
    """The columns of `entry` that lead an index (or a unique constraint) of its table."""
    meta = entry.model._meta
    leading = [
        first.removeprefix("-")
        for first in (
            *(index.fields[0] for index in meta.indexes if index.fields),
            *(c.fields[0] for c in meta.constraints if getattr(c, "fields", None)),
        )
    ]
    return [n for n in dict.fromkeys(leading) if entry.column(n) is not None]
