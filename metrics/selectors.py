"""The metric queries: full buckets from the aggregates, partial edges from the table."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import orjson
from django.conf import settings
from django.db import connection, transaction

CENT = Decimal("0.01")
CURRENT_COMPLETED = "valid_to IS NULL AND status = 'completed'"


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
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def spent_between(start: dt.datetime, end: dt.datetime) -> tuple[str, int]:
    """Total EUR and count of completed transactions with start <= timestamp <= end."""
    first = start.replace(second=0, microsecond=0)
    first = first if first == start else first + dt.timedelta(minutes=1)
    last = end.replace(second=0, microsecond=0)
    if first >= last:  # inside one minute: the table only
        sql = (
            "SELECT sum(amount_eur), count(*) FROM transactions "
            f"WHERE {CURRENT_COMPLETED} AND timestamp >= %s AND timestamp <= %s"
        )
        total, count = _fetch(sql, [start, end])[0]
        return money(total), int(count or 0)
    sql = (
        "SELECT sum(t), sum(n) FROM ("
        "SELECT total_eur t, transactions n FROM metrics_minute WHERE minute >= %s AND minute < %s "
        f"UNION ALL SELECT amount_eur, 1 FROM transactions WHERE {CURRENT_COMPLETED} "
        "AND ((timestamp >= %s AND timestamp < %s) OR (timestamp >= %s AND timestamp <= %s))"
        ") parts"
    )
    total, count = _fetch(sql, [first, last, start, first, last, end])[0]
    return money(total), int(count or 0)


def unbounded(split: Split) -> bool:
    """No since, no until: the all-time totals answer, no day rows to add up."""
    return split.first is None and split.last is None and not split.edges and not split.empty


def spent_per_user_type(split: Split, user_id: str | None, limit: int, offset: int):
    """(rows, count, count is an estimate): totals per user and type, largest first
    (then user, type)."""
    if split.empty:
        return [], 0, False
    if unbounded(split):
        return _all_time_per_user_type(user_id, limit, offset)
    if user_id is None and offset + limit <= RANKED_MAX:
        return _ranked_in_range(split, limit, offset)
    return (*_summed_per_user_type(split, user_id, limit, offset), False)


def _summed_per_user_type(split: Split, user_id: str | None, limit: int, offset: int):
    """Every group of the range summed, then sorted: for one user, or deep pages."""
    params: list = []
    buckets = _bucket_filter("day", split, params)
    user_a = " AND user_id = %s" if user_id else ""
    params += [user_id] if user_id else []
    edges = _edge_filter(split, params)
    params += [user_id] if user_id else []
    sql = (
        "WITH totals AS (SELECT user_id, transaction_type, sum(t) total, sum(n) n FROM ("
        f"SELECT user_id, transaction_type, total_eur t, transactions n FROM metrics_user_type_day "
        f"WHERE {buckets}{user_a} UNION ALL "
        f"SELECT user_id, transaction_type, amount_eur, 1 FROM transactions "
        f"WHERE {CURRENT_COMPLETED} AND {edges}{user_a}"
        ") parts GROUP BY 1, 2 HAVING sum(n) > 0) "
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


def _all_time_per_user_type(user_id: str | None, limit: int, offset: int):
    """From metrics_user_type_total: a walk of its (total DESC) index, and a count that
    is the planner's estimate above LAKE_EXACT_COUNT_LIMIT (as the rows endpoint's)."""
    where = "transactions > 0" + (" AND user_id = %s" if user_id else "")
    params = [user_id] if user_id else []
    # One user's few groups are read through the key index, then sorted: left to
    # itself the planner may walk the whole ranking index for them (seen: 200 ms).
    source = (
        "(SELECT * FROM metrics_user_type_total WHERE user_id = %s OFFSET 0) t"
        if user_id
        else "metrics_user_type_total"
    )
    rows = _fetch(
        f"SELECT user_id, transaction_type, total_eur, transactions FROM {source} "
        "WHERE transactions > 0 ORDER BY total_eur DESC, user_id, transaction_type "
        "LIMIT %s OFFSET %s",
        [*params, limit, offset],
    )
    count_sql = f"SELECT count(*) FROM metrics_user_type_total WHERE {where}"
    plan = _fetch(f"EXPLAIN (FORMAT JSON) {count_sql}", params)[0][0]
    estimate = _plan_rows(plan)
    estimated = estimate > settings.LAKE_EXACT_COUNT_LIMIT
    count = estimate if estimated else _fetch(count_sql, params)[0][0]
    results = [
        {"user_id": u, "transaction_type": t, "total_eur": money(total), "transactions": int(n)}
        for u, t, total, n in rows
    ]
    return results, count, estimated


# The ranking of a range without a user: the threshold algorithm over the all-time
# totals. Amounts are never negative, so a group's all-time total bounds its total in
# any range: walking the groups by all-time total, largest first, and summing each
# one's range, the walk can stop as soon as the next all-time total is below the
# range total of the last group of the page. Exact, and it reads the day rows of a
# few thousand groups instead of every group of the range.
RANKED_MAX = 5_000  # deeper pages sum every group
RANKED_BATCH = 500
SAMPLE_PERCENT = 0.5  # of the groups, to estimate how many have a total in the range

_RANKED_SQL = """
SELECT t.user_id, t.transaction_type, t.total_eur, r.total, r.n
FROM (
    SELECT user_id, transaction_type, total_eur FROM metrics_user_type_total
    WHERE transactions > 0 {after}
    ORDER BY total_eur DESC, user_id, transaction_type LIMIT %s
) t CROSS JOIN LATERAL (
    SELECT sum(v) AS total, sum(c) AS n FROM (
        SELECT d.total_eur v, d.transactions c FROM metrics_user_type_day d
        WHERE d.user_id = t.user_id AND d.transaction_type = t.transaction_type AND {days}
        UNION ALL
        SELECT x.amount_eur, 1 FROM transactions x
        WHERE x.user_id = t.user_id AND x.transaction_type = t.transaction_type
        AND x.valid_to IS NULL AND x.status = 'completed' AND {edges}
    ) p
) r
ORDER BY t.total_eur DESC, t.user_id, t.transaction_type
"""


def _range_sql(split: Split) -> tuple[str, list, str, list]:
    days_params: list = []
    days = _bucket_filter("d.day", split, days_params)
    if split.first is None and split.last is None and split.edges:
        days = "FALSE"  # inside one day: no whole day
    edge_params: list = []
    parts = []
    for start, end in split.edges:
        parts.append("(x.timestamp >= %s AND x.timestamp < %s)")
        edge_params += [start, end]
    edges = "(" + " OR ".join(parts) + ")" if parts else "FALSE"
    return days, days_params, edges, edge_params


RANKED_MAX_BATCHES = 40  # then the walk costs more than summing every group


def _ranked_in_range(split: Split, limit: int, offset: int):
    """One snapshot for the whole walk: a merge committing meanwhile cannot move a group
    past the bound or show it twice."""
    outer = connection.in_atomic_block  # a caller's transaction is the snapshot then
    with transaction.atomic(), connection.cursor() as cursor:
        if not outer:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        walked = _walk_ranked(split, offset + limit)
        if walked is None:  # the bound fell too slowly: every group summed instead
            return (*_summed_per_user_type(split, None, limit, offset), False)
        found, exhausted = walked
        page = found[offset : offset + limit]
        results = [
            {"user_id": u, "transaction_type": t, "total_eur": money(total), "transactions": int(n)}
            for total, n, u, t in page
        ]
        if exhausted:
            return results, len(found), False
        # More groups exist than the walk read: at least one past the page.
        return results, max(len(found), offset + limit + 1, _estimate_groups(split)), True


def _walk_ranked(split: Split, need: int):
    """(groups with a total in the range, ranked; whether every group was read), or None."""
    days, days_params, edges, edge_params = _range_sql(split)
    found: dict[tuple, tuple] = {}  # (user_id, transaction_type) -> (total, n, user, type)
    after, after_params = "", []
    for _ in range(RANKED_MAX_BATCHES):
        sql = _RANKED_SQL.format(after=after, days=days, edges=edges)
        rows = _fetch(sql, [*after_params, RANKED_BATCH, *days_params, *edge_params])
        for u, t, _bound, total, n in rows:
            if n:
                found[(u, t)] = (total, n, u, t)
        # Ties by user and type in code point order: `COLLATE "C"`, as the summed path.
        ranked = sorted(found.values(), key=lambda r: (-r[0], r[2], r[3]))
        if len(rows) < RANKED_BATCH:
            return ranked, True
        last_bound = rows[-1][2]
        # A group after this one totals at most last_bound in the range; ties go by
        # user and type, so an equal bound can still take a place.
        if len(ranked) >= need and last_bound < ranked[need - 1][0]:
            return ranked, False
        u, t = rows[-1][0], rows[-1][1]
        after = (
            "AND total_eur <= %s AND NOT (total_eur = %s AND (user_id, transaction_type) "
            "<= (%s, %s))"
        )
        after_params = [last_bound, last_bound, u, t]
    return None


def _estimate_groups(split: Split) -> int:
    """How many groups have a completed transaction on the range's days, from a sample
    of the groups (pages of metrics_user_type_total): the count is an estimate."""
    first = split.first or dt.date.min
    last = split.last or dt.date.max
    for start, end in split.edges:  # the partial days count as days here
        first, last = (
            min(first, start.date()),
            max(last, (end - dt.timedelta(microseconds=1)).date()),
        )
    sql = (
        f"SELECT count(*) FROM metrics_user_type_total t TABLESAMPLE SYSTEM ({SAMPLE_PERCENT}) "
        "REPEATABLE (42) WHERE t.transactions > 0 AND EXISTS (SELECT 1 FROM "
        "metrics_user_type_day d WHERE d.user_id = t.user_id AND "
        "d.transaction_type = t.transaction_type AND d.day >= %s AND d.day <= %s)"
    )
    sampled = _fetch(sql, [first, last])[0][0]
    return round(sampled * 100 / SAMPLE_PERCENT)


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


def top_products(split: Split, x: int) -> list[dict]:
    """The x products with the largest quantity of completed sales; ties by product_id."""
    if split.empty:
        return []
    if unbounded(split):
        rows = _fetch(
            "SELECT product_id, quantity, transactions FROM metrics_product_total "
            "WHERE transactions > 0 ORDER BY quantity DESC, product_id LIMIT %s",
            [x],
        )
        return [
            {"rank": i, "product_id": p, "quantity": int(q), "transactions": int(n)}
            for i, (p, q, n) in enumerate(rows, start=1)
        ]
    params: list = []
    buckets = _bucket_filter("day", split, params)
    edges = _edge_filter(split, params)
    sql = (
        "SELECT product_id, sum(q), sum(n) FROM ("
        f"SELECT product_id, quantity q, transactions n FROM metrics_product_day WHERE {buckets} "
        f"UNION ALL SELECT product_id, quantity, 1 FROM transactions "
        f"WHERE {CURRENT_COMPLETED} AND {edges}"
        ") parts GROUP BY product_id HAVING sum(n) > 0 ORDER BY 2 DESC, 1 LIMIT %s"
    )
    rows = _fetch(sql, [*params, x])
    return [
        {"rank": i, "product_id": p, "quantity": int(q), "transactions": int(n)}
        for i, (p, q, n) in enumerate(rows, start=1)
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
