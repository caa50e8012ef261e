"""The write side of the replica benchmark's mixed load (bench/scenarios/replica.py).

    python bench/scenarios/_replica_writer.py '{"seconds": 20, "batch": 2000, "pause": 0.05}'

Run in the measured tree's interpreter with its settings (DATABASE_URL: the primary).
Merges batches of new transactions (and corrections of the previous batch's rows), each
a version as a pipeline batch is, until `seconds` have passed; then prints
`REPLICA_WRITER {"rows": n, "versions": v, "seconds": s}`.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from decimal import Decimal

D0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def row(i: int, line: int, amount: int) -> dict:
    return {
        "line": line, "transaction_id": f"RW-{i:09d}", "user_id": f"U{i % 5000}",
        "timestamp": D0 + dt.timedelta(seconds=i), "transaction_type": "online",
        "payment_method": "card", "country": "FR", "product_id": f"P{i % 400}",
        "product_category": "books", "quantity": 1 + i % 3, "amount": Decimal(amount),
        "currency": "EUR", "amount_eur": Decimal(amount), "status": "completed",
        "customer_rating": None,
    }  # fmt: skip


def main() -> None:
    import django

    django.setup()
    from django.db import transaction

    from datalake.lake.merge import merge_transaction_rows

    options = json.loads(sys.argv[1])
    seconds, batch, pause = options["seconds"], options["batch"], options.get("pause", 0.0)
    start = time.monotonic()
    written = versions = 0
    first = int(time.time() * 1000) % 10**8 * 10  # new ids on every run
    while time.monotonic() - start < seconds:
        base = first + versions * batch
        rows = [row(base + k, k + 1, 101 + k % 50) for k in range(batch)]
        if versions:  # a tenth of the batch corrects the previous batch's rows
            rows += [row(base - batch + k, batch + k + 1, 300) for k in range(batch // 10)]
        with transaction.atomic():
            merge_transaction_rows(rows, "bench:replica")
        written += len(rows)
        versions += 1
        if pause:
            time.sleep(pause)
    elapsed = time.monotonic() - start
    print("REPLICA_WRITER " + json.dumps({"rows": written, "versions": versions,
                                          "seconds": elapsed}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
