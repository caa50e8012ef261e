"""Merging a run's staging table into the lake's tables, as the next version.

Everything here runs inside the one transaction of a run's merge: a crash or a
kill at any point leaves the tables as they were. A row whose business columns
are unchanged is left alone, so loading the same data again creates no version.
What else a merge keeps current (the search index, the metrics aggregates) is done by
the hooks the apps register (`datalake.lake.hooks`), in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection

from datalake.lake import hooks
from datalake.lake.versions import version_begin, version_commit, version_lock, version_publish
from datalake.models.lake import TRANSACTION_FIELDS


@dataclass
class MergeResult:
    version: int | None = None
    added: int = 0
    changed: int = 0
    removed: int = 0


def _cols(names, prefix: str) -> str:
    return ", ".join(f'{prefix}."{n}"' for n in names)


def _execute(sql: str, params=None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or {})
        return cursor.rowcount


class MergeConflict(Exception):
    """A concurrent merge wrote a record of this batch first: the batch must be merged
    again (its transaction rolled back), on top of the other's."""


def merge_versioned(
    resource: str,
    *,
    table: str,
    key: list[str],
    columns: list[str],
    source: str,
    stage_sql: str | None = None,
    stage_table: str | None = None,
    scope_sql: str | None = None,
    concurrent: bool = False,
) -> MergeResult:
    """Close the current rows that differ and insert the new versions of them.

    The stage (`stage_table`, or `stage_sql` materialised as a temporary table)
    has one row per key with `key + columns`. With `scope_sql` (a
    condition on the table's rows, alias `t`), current rows in that scope whose
    key is absent from the stage are closed too (a day's file replaced whole).

    `concurrent`: side by side with other concurrent merges of the resource (the
    pipeline's consumers, datalake.lake.versions.version_begin): the rows and search
    entries are written in parallel, the version is published in its order. Two
    batches holding the same key (a producer that did not key by id) are caught after
    the writes: the later one raises MergeConflict and is merged again.
    """
    if concurrent:
        resource_id, version = version_begin(resource)
    else:
        res, version = version_lock(resource)
    match = " AND ".join(f't."{k}" = s."{k}"' for k in key)
    stage = f'"{stage_table}"' if stage_table else f"_stage_{table}"
    if stage_sql:
        _execute(f"CREATE TEMP TABLE {stage} ON COMMIT DROP AS {stage_sql}")
        _execute(f"ANALYZE {stage}")  # its joins below go by index, not by hash of the table
    differs = f"ROW({_cols(columns, 't')}) IS DISTINCT FROM ROW({_cols(columns, 's')})"
    changed = _execute(
        f"UPDATE {table} t SET valid_to = %(v)s FROM {stage} s "
        f"WHERE {match} AND t.valid_to IS NULL AND {differs}",
        {"v": version},
    )
    # Rows whose key has no current row now (new keys, and those just closed). ON CONFLICT
    # against the partial unique index of current keys: one index probe a row, where the
    # index entry is written anyway, whatever the planner believes of the table's size
    # (an anti-join built on stale statistics read every current row, or looped).
    quoted_key = ", ".join(f'"{k}"' for k in key)
    inserted = _execute(
        f"INSERT INTO {table} ({', '.join(f'{chr(34)}{c}{chr(34)}' for c in key + columns)}, "
        f"valid_from) SELECT {_cols(key + columns, 's')}, %(v)s FROM {stage} s "
        f"ON CONFLICT ({quoted_key}) WHERE valid_to IS NULL DO NOTHING",
        {"v": version},
    )
    if concurrent:
        # A row another merge made current between our UPDATE and INSERT (they waited
        # for it to commit) hid ours from both: the key's current row is not the stage's.
        lost = _execute(
            f"SELECT 1 FROM {stage} s JOIN {table} t ON {match} AND t.valid_to IS NULL "
            f"WHERE {differs} LIMIT 1"
        )
        if lost:
            raise MergeConflict(f"a concurrent merge of {resource} wrote a key of this batch")
    removed = 0
    if scope_sql:
        removed = _execute(
            f"UPDATE {table} t SET valid_to = %(v)s WHERE t.valid_to IS NULL AND {scope_sql} "
            f"AND NOT EXISTS (SELECT 1 FROM {stage} s WHERE {match})",
            {"v": version},
        )
    added = inserted - changed
    merge = hooks.Merge(
        resource, table, version, stage.strip('"'), source, added, changed, removed
    )
    hooks.written(merge)  # the search index: side by side with concurrent merges
    if concurrent:
        res = version_publish(resource_id, version)
    current = version_commit(
        res, version, source=source, added=added, changed=changed, removed=removed
    )
    if merge.made:
        hooks.merged(merge)  # the metrics aggregates: in version order
    if stage_sql:
        _execute(f"DROP TABLE {stage}")
    return MergeResult(current, added, changed, removed)


# Business columns of `transactions` besides its key, as stored (with amount_eur).
TX_COLUMNS = [f for f in TRANSACTION_FIELDS if f != "transaction_id"]
TX_COLUMNS.insert(TX_COLUMNS.index("currency") + 1, "amount_eur")


def merge_transactions(
    stage: str, source: str, *, concurrent: bool = False
) -> dict[str, MergeResult]:
    return {
        "transactions": merge_versioned(
            "transactions",
            table="transactions",
            key=["transaction_id"],
            columns=TX_COLUMNS,
            stage_table=stage,
            source=source,
            concurrent=concurrent,
        )
    }


def merge_sales(stage: str, source: str) -> dict[str, MergeResult]:
    """A day's file replaces the day: changed lines are new versions, missing ones closed."""
    result = merge_versioned(
        "sales",
        table="sales",
        key=["sale_date", "line"],
        columns=["customer_id", "products"],
        stage_sql=f'SELECT sale_date, line, customer_id, products FROM "{stage}"',
        source=source,
        scope_sql=f't.sale_date IN (SELECT DISTINCT sale_date FROM "{stage}")',
    )
    _execute(
        f'DELETE FROM product_daily_sales WHERE date IN (SELECT DISTINCT sale_date FROM "{stage}")'
    )
    _execute(
        "INSERT INTO product_daily_sales (product_id, date, times_sold) "
        "SELECT p, s.sale_date, count(*) FROM sales s, unnest(s.products) p "
        f'WHERE s.valid_to IS NULL AND s.sale_date IN (SELECT DISTINCT sale_date FROM "{stage}") '
        "GROUP BY p, s.sale_date"
    )
    days = f'SELECT DISTINCT sale_date FROM "{stage}"'
    hooks.replaced(hooks.Replaced("product_daily_sales", f"t.date IN ({days})", days=days))
    return {"sales": result}


def merge_retail(stage: str, source: str) -> dict[str, MergeResult]:
    """One retail file fills four tables; each gets its own next version.

    Invoices first: the search entries of the items take their invoice's date.
    """
    s = f'"{stage}"'
    return {
        "retail_invoices": merge_versioned(
            "retail_invoices",
            table="retail_invoices",
            key=["invoice_no"],
            columns=["invoice_date", "customer_id", "country", "cancelled"],
            stage_sql="SELECT invoice_no, min(invoice_date) AS invoice_date, "
            "(array_agg(customer_id ORDER BY line))[1] AS customer_id, "
            "(array_agg(country ORDER BY line))[1] AS country, "
            f"invoice_no LIKE 'C%%' AS cancelled FROM {s} GROUP BY invoice_no",
            source=source,
        ),
        "retail_invoice_items": merge_versioned(
            "retail_invoice_items",
            table="retail_invoice_items",
            key=["invoice_no", "line"],
            columns=["stock_code", "description", "quantity", "unit_price"],
            stage_sql="SELECT invoice_no, row_number() OVER (PARTITION BY invoice_no ORDER BY line)"
            f"::integer AS line, stock_code, description, quantity, unit_price, "
            f"line AS src_line FROM {s}",
            source=source,
        ),
        "retail_customers": merge_versioned(
            "retail_customers",
            table="retail_customers",
            key=["customer_id"],
            columns=["country"],
            stage_sql="SELECT customer_id, (array_agg(country ORDER BY line DESC))[1] AS country "
            f"FROM {s} WHERE customer_id IS NOT NULL GROUP BY customer_id",
            source=source,
        ),
        "retail_stock_codes": merge_versioned(
            "retail_stock_codes",
            table="retail_stock_codes",
            key=["stock_code"],
            columns=["description"],
            stage_sql="SELECT stock_code, (array_agg(description ORDER BY line DESC) "
            f"FILTER (WHERE description IS NOT NULL))[1] AS description FROM {s} "
            "GROUP BY stock_code",
            source=source,
        ),
    }


def merge_exchange_rates(stage: str, source: str) -> dict[str, MergeResult]:
    """Not versioned: upsert; the last line of a (currency, date) wins."""
    changed = _execute(
        "INSERT INTO exchange_rates (date, currency, rate) "
        f'SELECT DISTINCT ON (currency, date) date, currency, rate FROM "{stage}" '
        "ORDER BY currency, date, line DESC "
        "ON CONFLICT (currency, date) DO UPDATE SET rate = EXCLUDED.rate "
        "WHERE exchange_rates.rate IS DISTINCT FROM EXCLUDED.rate"
    )
    where = f'(t.currency, t.date) IN (SELECT currency, date FROM "{stage}")'
    hooks.replaced(hooks.Replaced("exchange_rates", where))
    return {"exchange_rates": MergeResult(None, changed, 0, 0)}


PRODUCT_COLUMNS = ["title", "category", "description", "price_usd", "price_eur", "rate_date"]


def merge_products(stage: str, source: str) -> dict[str, MergeResult]:
    """A pulled catalogue adds or replaces products by product_id; none is deleted."""
    return {
        "products": merge_versioned(
            "products",
            table="products",
            key=["product_id"],
            columns=PRODUCT_COLUMNS,
            stage_table=stage,
            source=source,
        )
    }


MERGES = {
    "transactions": merge_transactions,
    "sales": merge_sales,
    "retail": merge_retail,
    "exchange_rates": merge_exchange_rates,
    "products": merge_products,
}
MAIN_TABLE = {
    "transactions": "transactions",
    "sales": "sales",
    "retail": "retail_invoice_items",
    "exchange_rates": "exchange_rates",
    "products": "products",
}


STAGE_COLUMNS = ["line", "transaction_id", *TX_COLUMNS]


def merge_transaction_rows(rows, source: str, *, concurrent: bool = False) -> MergeResult:
    """Merge validated transaction rows (dicts, with `line`) through a temporary stage.

    For callers that hold rows in memory (the pipeline consumer, `concurrent`: beside
    its other consumers); inside their transaction.
    """
    columns = ", ".join(f'"{c}"' for c in STAGE_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE memory_stage ON COMMIT DROP AS "
            f"SELECT {', '.join(STAGE_COLUMNS[1:])}, 0::bigint AS line FROM transactions "
            "WITH NO DATA"
        )
        # psycopg formats each row (in C): no Python string building per value.
        with cursor.copy(f"COPY memory_stage ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row.get(c) for c in STAGE_COLUMNS])
    result = merge_transactions("memory_stage", source, concurrent=concurrent)["transactions"]
    _execute("DROP TABLE memory_stage")
    return result
