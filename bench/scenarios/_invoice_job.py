"""The Django-side set-up of `bench/run.py invoice`: a set-up job of the harness
(bench/harness/child.py loads it by path, in the measured tree's interpreter, LAKE_ROOT
set). Imports nothing from `bench`."""

from __future__ import annotations

import time


def load_retail(path: str) -> dict:
    """Ingest the retail file at `path` through the real path (spark-submit and the
    versioned merges), unless a succeeded run of that file is there. The search index,
    which the invoice endpoint does not read, is off while loading."""
    from django.conf import settings
    from django.db import connection

    from ingestion.daily.services import ingestion_run_execute
    from ingestion.models import IngestionRun, RunStatus

    done = IngestionRun.objects.filter(source="retail", status=RunStatus.SUCCEEDED)
    if done.filter(path=path).exists():
        return {"loaded": False}
    settings.SEARCH_INDEX_ENABLED = False
    started = time.monotonic()
    run = IngestionRun.objects.create(source="retail", path=path)
    run = ingestion_run_execute(run.pk)
    if run.status != RunStatus.SUCCEEDED:
        raise SystemExit(f"the retail ingestion failed: {run.error}")
    seconds = time.monotonic() - started
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE retail_invoices, retail_invoice_items")
    return {"loaded": True, "rows": run.rows_loaded, "seconds": round(seconds, 1)}
