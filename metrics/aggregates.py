"""The aggregates of `transactions`, kept by the `metrics` follower (datalake.lake.followers).

The follower applies committed versions in order, in batches: a batch adds the completed
rows its versions made current and subtracts those they closed, and moves the follower's
position, in one transaction. The reads (metrics.selectors) answer at that position.
"""

from __future__ import annotations

import orjson
from django.db import connection

COMPLETED = "status = 'completed'"
DAY = "(timestamp AT TIME ZONE 'UTC')::date"
MINUTE = "date_trunc('minute', timestamp)"

# (table, key columns, key expressions, value columns, value expressions)
AGGREGATES = (
    (
        "metrics_product_day",
        ("product_id", "day"),
        ("product_id", DAY),
        ("quantity", "transactions", "total_eur"),
        ("quantity", "1", "amount_eur"),
    ),
    (
        "metrics_user_type_day",
        ("user_id", "transaction_type", "day"),
        ("user_id", "transaction_type", DAY),
        ("transactions", "total_eur"),
        ("1", "amount_eur"),
    ),
    (
        "metrics_product_total",
        ("product_id",),
        ("product_id",),
        ("quantity", "transactions", "total_eur"),
        ("quantity", "1", "amount_eur"),
    ),
    (
        "metrics_user_type_total",
        ("user_id", "transaction_type"),
        ("user_id", "transaction_type"),
        ("transactions", "total_eur"),
        ("1", "amount_eur"),
    ),
    (
        "metrics_minute",
        ("minute",),
        (MINUTE,),
        ("transactions", "total_eur"),
        ("1", "amount_eur"),
    ),
)


def _upsert_sql(table, keys, key_exprs, values, value_exprs, source: str) -> str:
    inner = [f"{e} AS {k}" for k, e in zip(keys, key_exprs, strict=True)]
    inner += [f"d.sign * {e} AS {v}" for v, e in zip(values, value_exprs, strict=True)]
    sums = ", ".join(f"sum({v})" for v in values)
    updates = ", ".join(f"{v} = {table}.{v} + EXCLUDED.{v}" for v in values)
    return (
        f"INSERT INTO {table} ({', '.join(keys)}, {', '.join(values)}) "
        f"SELECT {', '.join(keys)}, {sums} FROM (SELECT {', '.join(inner)} FROM ({source}) d) s "
        f"GROUP BY {', '.join(keys)} "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    )


DELTA_COLUMNS = "product_id, user_id, transaction_type, timestamp, quantity, amount_eur"


def scoped_table(table: str) -> str:
    return table.replace("metrics_", "metrics_scoped_", 1)


def scoped_upsert_sql(spec, scope_id: int, source: str) -> str:
    """The upsert of one aggregate of a scope (metrics.scopes): the same sums, keyed by
    the scope too, in its `metrics_scoped_*` table."""
    table, keys, key_exprs, values, value_exprs = spec
    return _upsert_sql(
        scoped_table(table),
        ("scope_id", *keys),
        (str(int(scope_id)), *key_exprs),
        values,
        value_exprs,
        source=source,
    )


def apply_versions(after: int, through: int) -> None:
    """Add the completed rows that versions `after` < v <= `through` made current and
    subtract those they closed (a row both made and closed in the range cancels out).

    The range's rows are read once, into a temporary table that the five upserts then
    share (instead of each reading them from `transactions`).
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, row_filter FROM metrics_scope ORDER BY id")
        scopes = cursor.fetchall()
        # With scopes, the delta keeps every column: their row filters read it.
        columns = "transactions.*" if scopes else DELTA_COLUMNS
        cursor.execute(
            "CREATE TEMP TABLE metrics_delta ON COMMIT DROP AS "
            f"SELECT {columns}, 1 AS sign FROM transactions "
            f"WHERE valid_from > %(a)s AND valid_from <= %(b)s AND {COMPLETED} "
            f"UNION ALL SELECT {columns}, -1 AS sign FROM transactions "
            f"WHERE valid_to > %(a)s AND valid_to <= %(b)s AND {COMPLETED}",
            {"a": int(after), "b": int(through)},
        )
        if cursor.rowcount:
            for spec in AGGREGATES:
                cursor.execute(_upsert_sql(*spec, source="SELECT * FROM metrics_delta"))
            for scope_id, row_filter in scopes:
                from metrics.scopes import filter_sql

                # The delta named as the table, so the filter's columns resolve on it.
                source = (
                    "SELECT * FROM metrics_delta transactions "
                    f"WHERE {filter_sql(_rows(row_filter))}"
                )
                for spec in AGGREGATES:  # with parameters: the filter's `%` are doubled
                    cursor.execute(scoped_upsert_sql(spec, scope_id, source), [])
            # The days these versions changed: the rankings kept for ranges over them are
            # stale from this commit on (metrics.ranges). In day order, as before.
            cursor.execute(
                "INSERT INTO metrics_day_changes (day, changes) "
                f"SELECT DISTINCT {DAY}, 1 FROM metrics_delta ORDER BY 1 "
                "ON CONFLICT (day) DO UPDATE SET changes = metrics_day_changes.changes + 1"
            )
        cursor.execute("DROP TABLE metrics_delta")


def _rows(row_filter) -> tuple[dict, ...]:
    row_filter = orjson.loads(row_filter) if isinstance(row_filter, str | bytes) else row_filter
    return tuple({k: tuple(v) for k, v in f.items()} for f in row_filter)


def apply_batch(batch) -> None:
    """The `metrics` follower's step: the batch's versions of `transactions` at once."""
    apply_versions(batch.after, batch.through)


def rebuild(tables=None) -> None:
    """Recompute the aggregates (all, or those named) from the current rows (one
    transaction by the caller). Migrations name theirs: a later table may not exist yet.
    All of them: the metrics follower then stands at the current version (its position
    locked first, so it does not apply a batch meanwhile)."""
    source = f"SELECT *, 1 AS sign FROM transactions WHERE valid_to IS NULL AND {COMPLETED}"
    if tables is None:
        from datalake.lake import followers

        followers.locked_position("metrics", "transactions")
    with connection.cursor() as cursor:
        for spec in AGGREGATES:
            if tables is not None and spec[0] not in tables:
                continue
            cursor.execute(f"TRUNCATE {spec[0]}")
            cursor.execute(_upsert_sql(*spec, source=source))
        if tables is None:  # the rankings kept over ranges go with the aggregates, and the
            # scopes (metrics.scopes: built again from the rows on their next use)
            cursor.execute("TRUNCATE metrics_range_row, metrics_range_result")
            cursor.execute("TRUNCATE metrics_scope CASCADE")
    if tables is None:
        followers.move_to("metrics", "transactions")
