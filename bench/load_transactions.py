"""Load N synthetic transactions into the `transactions` table, as fast as PostgreSQL can.

    python bench/load_transactions.py [--rows 10000000] [--seed 42] [--replace]

The database is the one DATABASE_URL names (migrated beforehand). The rows are made
inside PostgreSQL (INSERT ... SELECT over generate_series: no client round trips, no
parsing), with deterministic, seeded distributions: every value is a hash of the row
number and the seed, so a rerun gives the same table.

Fastest path, in one transaction (a crash leaves the table as it was): read the
table's secondary index definitions from pg_indexes, drop them, truncate, insert,
recreate the indexes from the definitions read (exactly the migration's), commit.
Then VACUUM ANALYZE: planner statistics, and the visibility map and hint bits that
the first readers would otherwise write.

Idempotent: a table that already holds exactly N current rows (and no history) is
left alone. A table holding other rows is replaced only with --replace.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import psycopg

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/datalake_bench"
START = "2026-01-01 00:00:00+00"
DAYS = 30
USERS = 200_000
PRODUCTS = 5_000
CHUNK = 1_000_000

# (value, weight) pairs; weights are percentages.
COUNTRIES = [
    ("FR", 15), ("DE", 14), ("GB", 12), ("ES", 10), ("IT", 10), ("US", 9),
    ("NL", 7), ("BE", 6), ("PT", 5), ("PL", 5), ("SE", 4), ("CH", 3),
]  # fmt: skip
PAYMENT_METHODS = [
    ("card", 50), ("paypal", 20), ("bank_transfer", 12), ("cash", 10), ("voucher", 8),
]  # fmt: skip
TYPES = [("online", 45), ("in_store", 30), ("mobile", 20), ("subscription", 5)]
STATUSES = [("completed", 80), ("pending", 8), ("failed", 5), ("refunded", 4), ("cancelled", 3)]
CATEGORIES = [
    ("electronics", 18), ("clothing", 16), ("home", 14), ("books", 12),
    ("sports", 10), ("beauty", 10), ("toys", 8), ("grocery", 7), (None, 5),
]  # fmt: skip
RATINGS = [(None, 40), (5, 21), (4, 18), (3, 9), (2, 6), (1, 6)]
QUANTITIES = [(1, 60), (2, 20), (3, 10), (4, 6), (5, 4)]


def _literal(value) -> str:
    if value is None:
        return "NULL"
    return str(value) if isinstance(value, int) else "'" + value.replace("'", "''") + "'"


def _weighted(bucket: str, choices) -> str:
    """A CASE picking a value by a 0..99 bucket according to the weights."""
    assert sum(w for _, w in choices) == 100, choices
    parts, upper = [], 0
    for value, weight in choices[:-1]:
        upper += weight
        parts.append(f"WHEN {bucket} < {upper} THEN {_literal(value)}")
    return f"CASE {' '.join(parts)} ELSE {_literal(choices[-1][0])} END"


def insert_sql(rows: int, seed: int) -> str:
    """INSERT ... SELECT of the rows numbered %(lo)s..%(hi)s (1-based)."""

    def h(k: int, modulo: int) -> str:  # a uniform integer 0..modulo-1 from (row, seed, k)
        return f"mod(hashint8extended(g, {seed * 100 + k}) & 9223372036854775807, {modulo})"

    seconds_per_row = DAYS * 86400 / rows
    return f"""
    INSERT INTO transactions (
        id, valid_from, valid_to, transaction_id, user_id, "timestamp", transaction_type,
        payment_method, country, product_id, product_category, quantity, amount, currency,
        amount_eur, status, customer_rating)
    SELECT g, 1, NULL, 'TX-' || lpad(g::text, 8, '0'),
        'U' || lpad(b.user_no::text, 6, '0'),
        timestamptz '{START}' + make_interval(secs => (g - 1) * {seconds_per_row!r}),
        {_weighted("b.b_type", TYPES)},
        {_weighted("b.b_pay", PAYMENT_METHODS)},
        {_weighted("b.b_country", COUNTRIES)},
        'P' || lpad(floor({PRODUCTS} * b.u_product * b.u_product)::int::text, 5, '0'),
        {_weighted("b.b_category", CATEGORIES)},
        {_weighted("b.b_quantity", QUANTITIES)},
        b.cents / 100.0, 'EUR', b.cents / 100.0,
        {_weighted("b.b_status", STATUSES)},
        {_weighted("b.b_rating", RATINGS)}
    FROM (
        SELECT g, {h(1, USERS)} AS user_no, {h(2, 100)} AS b_type, {h(3, 100)} AS b_pay,
            {h(4, 100)} AS b_country, {h(5, 1_000_000)} / 1e6 AS u_product,
            {h(6, 100)} AS b_category, {h(7, 100)} AS b_quantity, {h(8, 50_001)} AS cents,
            {h(9, 100)} AS b_status, {h(10, 100)} AS b_rating
        FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS g
        OFFSET 0  -- computed once per row, not once per CASE branch
    ) AS b
    """


def secondary_indexes(cur) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of every index not backing a constraint (the PK)."""
    cur.execute(
        """
        SELECT i.indexname, i.indexdef FROM pg_indexes i
        WHERE i.schemaname = current_schema() AND i.tablename = 'transactions'
          AND NOT EXISTS (
            SELECT 1 FROM pg_constraint c
            WHERE c.conindid = format('%I.%I', i.schemaname, i.indexname)::regclass)
        ORDER BY i.indexname
        """
    )
    return cur.fetchall()


def counts(cur) -> tuple[int, int]:
    cur.execute("SELECT count(*), count(*) FILTER (WHERE valid_to IS NULL) FROM transactions")
    return cur.fetchone()


def log(message: str) -> None:
    print(f"[load {time.strftime('%H:%M:%S')}] {message}", flush=True)


def load(url: str, rows: int, seed: int, replace: bool) -> bool:
    """Load the rows unless already there; True if it loaded."""
    with psycopg.connect(url, autocommit=True) as conn:
        total, current = counts(conn.cursor())
        if total == rows and current == rows:
            log(f"transactions already holds {rows:,} current rows: nothing to do")
            return False
        if total and not replace:
            sys.exit(f"transactions holds {total:,} rows, not {rows:,}: rerun with --replace")
        started = time.perf_counter()
        with conn.transaction():
            cur = conn.cursor()
            indexes = secondary_indexes(cur)
            for name, _ in indexes:
                cur.execute(f'DROP INDEX "{name}"')
            cur.execute("TRUNCATE transactions")
            log(f"dropped {len(indexes)} secondary indexes; inserting {rows:,} rows")
            sql = insert_sql(rows, seed)
            for lo in range(1, rows + 1, CHUNK):
                hi = min(lo + CHUNK - 1, rows)
                cur.execute(sql, {"lo": lo, "hi": hi})
                log(f"  {hi:,} rows ({hi / (time.perf_counter() - started):,.0f} rows/s)")
            inserted = time.perf_counter()
            cur.execute("SET LOCAL maintenance_work_mem = '1GB'")
            cur.execute("SET LOCAL max_parallel_maintenance_workers = 2")
            for name, definition in indexes:
                t0 = time.perf_counter()
                cur.execute(definition)
                log(f"  index {name}: {time.perf_counter() - t0:.1f} s")
            cur.execute("SELECT setval(pg_get_serial_sequence('transactions', 'id'), %s)", [rows])
        built = time.perf_counter()
        cur = conn.cursor()
        cur.execute("VACUUM (ANALYZE) transactions")
        done = time.perf_counter()
        log(
            f"loaded {rows:,} rows in {done - started:.0f} s: insert {inserted - started:.0f} s "
            f"({rows / (inserted - started):,.0f} rows/s), {len(indexes)} indexes "
            f"{built - inserted:.0f} s, vacuum analyze {done - built:.0f} s"
        )
        return True


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--replace", action="store_true", help="replace a table of other rows")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_URL))
    args = parser.parse_args(argv)
    if not 1 <= args.rows <= 99_999_999:
        parser.error("--rows must be 1..99,999,999 (ids are TX- and 8 digits)")
    load(args.database_url, args.rows, args.seed, args.replace)


if __name__ == "__main__":
    main()
