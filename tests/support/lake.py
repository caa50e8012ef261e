"""Data for the lake: transaction records, landed files, ingestion runs and merges.

`tx` is a record as delivered (JSON Lines, the pipeline's messages); `row` is a validated
row as the merge takes it; `pipeline_batch` merges records as the stream consumer does,
`merge` merges rows; `ingest` runs a daily ingestion (Spark) of a landed file.
"""

from __future__ import annotations

import datetime as dt
import json
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

from django.db import connection, transaction

from datalake.lake.merge import merge_transaction_rows
from ingestion.daily.services import ingestion_run_execute, ingestion_runs_execute
from ingestion.models import IngestionRun
from ingestion.rates import RateTable
from ingestion.validation import validate_transaction

D0 = dt.datetime(2026, 11, 18, tzinfo=dt.UTC)  # the first timestamp of `row(0)`


def tx(i: int, **changes) -> dict:
    """Delivered record number `i` (a valid one unless `changes` break it)."""
    base = {
        "transaction_id": f"TX-{i:04d}",
        "user_id": f"U{i % 7}",
        "timestamp": f"2026-11-2{i % 3}T12:{i % 60:02d}:00Z",
        "transaction_type": "online",
        "payment_method": "card",
        "country": "FR",
        "product_id": f"P{i % 5}",
        "product_category": "books",
        "quantity": 1 + i % 3,
        "amount": 10 + i,
        "currency": "EUR",
        "status": "completed",
        "customer_rating": 1 + i % 5,
    }
    return {**base, **changes}


def write_lines(path: Path, lines: list) -> Path:
    """A landed JSON Lines file (strings are written as they are: broken lines too)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = [line if isinstance(line, str) else json.dumps(line) for line in lines]
    path.write_text("\n".join(text) + "\n")
    return path


def ingest(source: str, path: Path) -> IngestionRun:
    """A daily ingestion run of `path`, executed here (spark-submit in local mode)."""
    run = IngestionRun.objects.create(source=source, path=str(path))
    return ingestion_run_execute(run.pk)


def ingest_all(source: str, *paths: Path) -> list[IngestionRun]:
    """Runs of `paths` in order, executed here as the daily scan executes them: one
    spark-submit (one JVM start) for all, each merged in turn."""
    runs = [IngestionRun.objects.create(source=source, path=str(path)) for path in paths]
    return ingestion_runs_execute([run.pk for run in runs])


def pipeline_batch(*records: dict) -> None:
    """Records merged as the consumer merges a batch of messages."""
    rates = RateTable.from_database()
    rows = []
    for line, record in enumerate(records, 1):
        row, reason = validate_transaction(json.dumps(record), rates)
        assert reason is None, reason
        rows.append({**row, "line": line})
    with transaction.atomic():
        merge_transaction_rows(rows, "pipeline:test")


def row(i: int, **changes) -> dict:
    """Validated row number `i`, 5 hours after row `i - 1` from `D0`; every 5th refunded."""
    base = {
        "line": i,
        "transaction_id": f"TX-{i:04d}",
        "user_id": f"U{i % 3}",
        "timestamp": D0 + dt.timedelta(hours=5 * i),
        "transaction_type": ["online", "mobile"][i % 2],
        "payment_method": "card",
        "country": "FR",
        "product_id": f"P{i % 4}",
        "product_category": "books",
        "quantity": 1 + i % 3,
        "amount": Decimal(10 + i),
        "currency": "EUR",
        "amount_eur": Decimal(10 + i) + Decimal("0.25"),
        "status": "completed" if i % 5 else "refunded",
        "customer_rating": None,
    }
    return {**base, **changes}


def merge(rows, source="test"):
    """Rows merged in one transaction, as an ingestion run merges its file."""
    with transaction.atomic():
        return merge_transaction_rows(rows, source)


def completed(data: dict, since=None, until=None) -> list[dict]:
    """The completed rows of `data` (transaction_id -> row) in [since, until]."""
    return [
        r
        for r in data.values()
        if r["status"] == "completed"
        and (since is None or r["timestamp"] >= since)
        and (until is None or r["timestamp"] <= until)
    ]


BULK_SQL = """
INSERT INTO transactions (valid_from, transaction_id, user_id, "timestamp", transaction_type,
    payment_method, country, product_id, product_category, quantity, amount, currency,
    amount_eur, status, customer_rating)
SELECT 1, 'TX-' || lpad(i::text, 7, '0'), 'U' || (i %% 5000),
    timestamptz '2026-11-01' + i * interval '1 minute',
    (ARRAY['online', 'in_store', 'mobile'])[1 + i %% 3],
    (ARRAY['card', 'paypal', 'cash', 'voucher'])[1 + i %% 4],
    (ARRAY['FR', 'DE', 'ES', 'BE', 'IT', 'NL'])[1 + (i * 7) %% 6],
    'P' || (i %% 500), 'books', 1 + i %% 5, (i %% 30000) / 100.0, 'EUR', (i %% 30000) / 100.0,
    'completed', 1 + i %% 5
FROM generate_series(1, %s) AS i
"""


@contextmanager
def many_transactions(n: int):
    """`n` current transactions `TX-0000001`... made inside PostgreSQL, analysed: a table
    big enough for the planner's estimates to mean something. Deleted and analysed again
    on the way out: the statistics outlive the test's rollback, and other tests want
    the planner to see an empty table. The rows are version 1, as a merge would make."""
    from datalake.models import Resource
    from lineage.models import Version

    with connection.cursor() as cursor:
        cursor.execute(BULK_SQL, [n])
        cursor.execute("ANALYZE transactions")
    resource = Resource.objects.get(name="transactions")
    Version.objects.create(resource=resource, version=1, source="test:bulk", rows_added=n)
    Resource.objects.filter(pk=resource.pk).update(current_version=1)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM transactions")
            cursor.execute("ANALYZE transactions")
