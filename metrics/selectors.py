"""The metric queries: full buckets from the aggregates, partial edges from the table.

Every figure is as of the `metrics` follower's position: the aggregates hold exactly the
versions up to it, and the edges read the table's rows as they were at that version
(`visible_as_of`), the position read by the same statement (one snapshot), so a figure
never mixes two versions. `as_of` None is that; a number reads the edges at that version
(the tests, a scope's build under the locked position).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import orjson
from django.conf import settings

from datalake.platform import replicas
from metrics import ranges

CENT = Decimal("0.01")


@dataclass(frozen=True)
class MetricScope:
    """Which rows the figures are over: every row (`EVERY_ROW`, the plain aggregates), or
    those a restricted grant's row filter lets through (metrics.scopes: the scope's own
    aggregates, and its filter on the table's edges)."""

    id: int | None = None
    filter_sql: str | None = None  # literal SQL over transactions' columns
    key: str = "all"

    @property
    def ranking_key(self) -> str:
        """What kept rankings (metrics.ranges) are stored under: the scope itself, so a
        scope dropped and built again never serves a ranking of the one before."""
        return "all" if self.id is None else f"{self.id}-{self.key}"

    def table(self, name: str) -> str:
        return name if self.id is None else name.replace("metrics_", "metrics_scoped_", 1)

    def where(self) -> str:
        """The aggregate rows of this scope (a condition to AND)."""
        return "TRUE" if self.id is None else f"scope_id = {int(self.id)}"


EVERY_ROW = MetricScope()


# The metrics follower's position, read by the statement that reads the aggregates: one
# snapshot for both, so the edges read from the table are of the version the aggregates
# hold (a position read in an earlier statement may be older by the time they are read).
FOLLOWED = (
    "(SELECT p.derived_through_version FROM lake_follower_position p "
    "JOIN datalake_resource r ON r.id = p.resource_id "
    "WHERE p.follower = 'metrics' AND r.name = 'transactions')"
)


def visible_as_of(as_of: int | None, filter_sql: str | None = None) -> str:
    """The completed rows of `transactions` at version `as_of` (None: the metrics
    follower's position, in the same snapshot as the aggregates the statement reads), and
    that `filter_sql` lets through, as a FROM source: the current rows made by then (their
    partial indexes), and the rows closed since (few: the versions the follower has not
    derived yet), each branch by its own index."""
    v = FOLLOWED if as_of is None else str(int(as_of))
    extra = f" AND ({filter_sql})" if filter_sql else ""
    return (
        f"(SELECT * FROM transactions WHERE valid_to IS NULL AND valid_from <= {v} "
        f"AND status = 'completed'{extra} "
        f"UNION ALL SELECT * FROM transactions WHERE valid_to > {v} AND valid_from <= {v} "
        f"AND status = 'completed'{extra}) tx"
    )


@dataclass
class Split:
    """A [since, until] range as whole buckets plus the partial bucket edges."""

    first: object | None  # first whole bucket (inclusive), None: unbounded
    last: object | None  # last whole bucket (inclusive), None: unbounded
    edges: list  # [(start, end_exclusive)] covered from the raw table
    empty: bool = False


def split_days(since: dt.datetime | None, until: dt.datetime | None) -> Split:
    """Whole UTC days inside [since, until] and the partial days at either end."""
    day = dt.timedelta(days=1)
    end = until + dt.timedelta(microseconds=1) if until else None  # exclusive
    if since and end and since >= end:
        return Split(None, None, [], empty=True)
    first = _ceil_day(since) if since else None
    last_exclusive = _floor_day(end) if end else None
    edges = []
    if first and last_exclusive and first >= last_exclusive:  # inside one day
        return Split(dt.date.max, dt.date.min, [(since, end)])
    if since and since < first:
        edges.append((since, first))
    if end and end > last_exclusive:
        edges.append((last_exclusive, end))
    return Split(
        first.date() if first else None,
        (last_exclusive - day).date() if last_exclusive else None,
        edges,
    )


def _floor_day(t: dt.datetime) -> dt.datetime:
    t = t.astimezone(dt.UTC)
    return dt.datetime.combine(t.date(), dt.time(), dt.UTC)


def _ceil_day(t: dt.datetime) -> dt.datetime:
    floor = _floor_day(t)
    return floor if floor == t else floor + dt.timedelta(days=1)


def _bucket_filter(column: str, split: Split, params: list) -> str:
    parts = []
    if split.first is not None:
        parts.append(f"{column} >= %s")
        params.append(split.first)
    if split.last is not None:
        parts.append(f"{column} <= %s")
        params.append(split.last)
    return " AND ".join(parts) or "TRUE"


def _edge_filter(split: Split, params: list) -> str:
    if not split.edges:
        return "FALSE"
    parts = []
    for start, end in split.edges:
        parts.append("(timestamp >= %s AND timestamp < %s)")
        params += [start, end]
    return "(" + " OR ".join(parts) + ")"


def money(value) -> str:
    return str(Decimal(value or 0).quantize(CENT))


def _fetch(sql: str, params: list) -> list[tuple]:
    with replicas.reads().cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def spent_between(
    start: dt.datetime, end: dt.datetime, as_of: int | None, scope: MetricScope = EVERY_ROW
) -> tuple[str, int]:
    """Total EUR and count of completed transactions with start <= timestamp <= end."""
    first = start.replace(second=0, microsecond=0)
    first = first if first == start else first + dt.timedelta(minutes=1)
    last = end.replace(second=0, microsecond=0)
    if first >= last:  # inside one minute: the table only
        sql = (
            f"SELECT sum(amount_eur), count(*) FROM {visible_as_of(as_of, scope.filter_sql)} "
            "WHERE timestamp >= %s AND timestamp <= %s"
        )
        total, count = _fetch(sql, [start, end])[0]
        return money(total), int(count or 0)
    sql = (
        "SELECT sum(t), sum(n) FROM ("
        f"SELECT total_eur t, transactions n FROM {scope.table('metrics_minute')} "
        f"WHERE {scope.where()} AND minute >= %s AND minute < %s "
        f"UNION ALL SELECT amount_eur, 1 FROM {visible_as_of(as_of, scope.filter_sql)} "
        "WHERE ((timestamp >= %s AND timestamp < %s) OR (timestamp >= %s AND timestamp <= %s))"
        ") parts"
    )
    total, count = _fetch(sql, [first, last, start, first, last, end])[0]
    return money(total), int(count or 0)


def unbounded(split: Split) -> bool:
    """No since, no until: the all-time totals answer, no day rows to add up."""
    return split.first is None and split.last is None and not split.edges and not split.empty


def spent_per_user_type(
    split: Split,
    user_id: str | None,
    limit: int,
    offset: int,
    as_of: int | None,
    scope: MetricScope = EVERY_ROW,
):
    """(rows, count, count is an estimate): totals per user and type, largest first
    (then user, type)."""
    if split.empty:
        return [], 0, False
    if unbounded(split):
        return _all_time_per_user_type(user_id, limit, offset, scope)
    if user_id is None and offset + limit <= ranges.KEEP[ranges.SPENT_PER_USER_TYPE]:
        params: list = []
        groups = (
            "SELECT user_id AS key, transaction_type AS key2, total, n AS transactions "
            f"FROM ({_user_type_totals(split, params, as_of, scope)}) totals"
        )
        order = 'total DESC, key COLLATE "C", key2 COLLATE "C"'
        rows, count = ranges.ranked_page(
            ranges.SPENT_PER_USER_TYPE,
            split,
            groups,
            params,
            order,
            offset,
            limit,
            scope.ranking_key,
        )
        results = [
            {"user_id": u, "transaction_type": t, "total_eur": money(total), "transactions": int(n)}
            for u, t, total, n in rows
        ]
        return results, count, False
    return (*_summed_per_user_type(split, user_id, limit, offset, as_of, scope), False)


def _user_type_totals(
    split: Split, params: list, as_of: int | None, scope: MetricScope, user_id: str | None = None
) -> str:
    """The query of every (user, type) group's total and count over the range."""
    buckets = _bucket_filter("day", split, params)
    user_a = " AND user_id = %s" if user_id else ""
    params += [user_id] if user_id else []
    edges = _edge_filter(split, params)
    params += [user_id] if user_id else []
    return (
        "SELECT user_id, transaction_type, sum(t) total, sum(n) n FROM ("
        "SELECT user_id, transaction_type, total_eur t, transactions n "
        f"FROM {scope.table('metrics_user_type_day')} "
        f"WHERE {scope.where()} AND {buckets}{user_a} UNION ALL "
        "SELECT user_id, transaction_type, amount_eur, 1 "
        f"FROM {visible_as_of(as_of, scope.filter_sql)} "
        f"WHERE {edges}{user_a}"
        ") parts GROUP BY 1, 2 HAVING sum(n) > 0"
    )


def _summed_per_user_type(
    split: Split,
    user_id: str | None,
    limit: int,
    offset: int,
    as_of: int | None,
    scope: MetricScope = EVERY_ROW,
):
    """Every group of the range summed, then sorted: for one user, or deep pages."""
    params: list = []
    sql = (
        f"WITH totals AS ({_user_type_totals(split, params, as_of, scope, user_id)}) "
        "SELECT user_id, transaction_type, total, n, count(*) OVER () FROM totals "
        'ORDER BY total DESC, user_id COLLATE "C", transaction_type COLLATE "C" '
        "LIMIT %s OFFSET %s"
    )
    rows = _fetch(sql, [*params, limit, offset])
    count = rows[0][4] if rows else _count_user_types(sql, params)
    results = [
        {"user_id": u, "transaction_type": t, "total_eur": money(total), "transactions": int(n)}
        for u, t, total, n, _ in rows
    ]
    return results, count


def _all_time_per_user_type(
    user_id: str | None, limit: int, offset: int, scope: MetricScope = EVERY_ROW
):
    """From metrics_user_type_total: a walk of its (total DESC) index, and a count that
    is the planner's estimate above LAKE_EXACT_COUNT_LIMIT (as the rows endpoint's)."""
    table = scope.table("metrics_user_type_total")
    where = f"{scope.where()} AND transactions > 0" + (" AND user_id = %s" if user_id else "")
    params = [user_id] if user_id else []
    # One user's few groups are read through the key index, then sorted: left to
    # itself the planner may walk the whole ranking index for them (seen: 200 ms).
    source = (
        f"(SELECT * FROM {table} WHERE {scope.where()} AND user_id = %s OFFSET 0) t"
        if user_id
        else table
    )
    rows = _fetch(
        f"SELECT user_id, transaction_type, total_eur, transactions FROM {source} "
        f"WHERE {scope.where()} AND transactions > 0 "
        "ORDER BY total_eur DESC, user_id, transaction_type "
        "LIMIT %s OFFSET %s",
        [*params, limit, offset],
    )
    count_sql = f"SELECT count(*) FROM {table} WHERE {where}"
    plan = _fetch(f"EXPLAIN (FORMAT JSON) {count_sql}", params)[0][0]
    estimate = _plan_rows(plan)
    estimated = estimate > settings.LAKE_EXACT_COUNT_LIMIT
    count = estimate if estimated else _fetch(count_sql, params)[0][0]
    results = [
        {"user_id": u, "transaction_type": t, "total_eur": money(total), "transactions": int(n)}
        for u, t, total, n in rows
    ]
    return results, count, estimated


def _plan_rows(plan) -> int:
    """Rows the planner expects from the scan under an EXPLAIN (FORMAT JSON) of count(*)."""
    plan = orjson.loads(plan) if isinstance(plan, str | bytes) else plan
    node = plan[0]["Plan"]
    while node.get("Plans") and node.get("Node Type") in (
        "Aggregate",
        "Gather",
        "Finalize Aggregate",
        "Partial Aggregate",
    ):
        node = node["Plans"][0]
    return int(node["Plan Rows"])


def _count_user_types(sql: str, params: list) -> int:
    rows = _fetch(sql, [*params, 1, 0])
    return rows[0][4] if rows else 0


def top_products(
    split: Split, x: int, as_of: int | None, scope: MetricScope = EVERY_ROW
) -> list[dict]:
    """The x products with the largest quantity of completed sales; ties by product_id."""
    if split.empty:
        return []
    if unbounded(split):
        rows = _fetch(
            "SELECT product_id, quantity, transactions "
            f"FROM {scope.table('metrics_product_total')} WHERE {scope.where()} "
            "AND transactions > 0 ORDER BY quantity DESC, product_id LIMIT %s",
            [x],
        )
        return [
            {"rank": i, "product_id": p, "quantity": int(q), "transactions": int(n)}
            for i, (p, q, n) in enumerate(rows, start=1)
        ]
    params: list = []
    buckets = _bucket_filter("day", split, params)
    edges = _edge_filter(split, params)
    groups = (
        "SELECT product_id AS key, '' AS key2, sum(q) AS total, sum(n) AS transactions FROM ("
        "SELECT product_id, quantity q, transactions n "
        f"FROM {scope.table('metrics_product_day')} WHERE {scope.where()} AND {buckets} "
        f"UNION ALL SELECT product_id, quantity, 1 FROM {visible_as_of(as_of, scope.filter_sql)} "
        f"WHERE {edges}"
        ") parts GROUP BY product_id HAVING sum(n) > 0"
    )
    order = "total DESC, key"
    rows, _ = ranges.ranked_page(
        ranges.TOP_PRODUCTS, split, groups, params, order, 0, x, scope.ranking_key
    )
    return [
        {"rank": i, "product_id": p, "quantity": int(q), "transactions": int(n)}
        for i, (p, _, q, n) in enumerate(rows, start=1)
    ]


def product_sales(product_id: str, first: dt.date, last: dt.date) -> list[dict]:
    """Times sold per day from the daily sales dumps, every day present (zeros included)."""
    sql = (
        "SELECT d::date, coalesce(p.times_sold, 0) FROM generate_series(%s::date, %s::date, "
        "interval '1 day') d LEFT JOIN product_daily_sales p ON p.date = d::date "
        "AND p.product_id = %s ORDER BY 1"
    )
    return [
        {"date": day, "times_sold": int(n)} for day, n in _fetch(sql, [first, last, product_id])
    ]
