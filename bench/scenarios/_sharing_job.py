"""Django-side set-up jobs of the `sharing` benchmark (bench/scenarios/sharing.py), run in
the interpreter of the tree measured by `Tree.job("bench/scenarios/_sharing_job.py:<fn>")`
(DATABASE_URL and LAKE_ROOT set by the harness). Imports nothing from `bench`.

    ingest_day   one daily file of `rows` transactions through the real ingestion path
                 (an `IngestionRun`, then `ingestion.daily.services.ingestion_runs_execute`,
                 what the Celery task `ingestion.run_batch` runs: Spark, the versioned
                 merge and its hooks), timed: a new version of `transactions`
    counts       current rows of `transactions`, in all and under a country filter
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def ingest_helpers():
    """The ingest benchmark's helpers (bench/scenarios/ingest_job.py: generate,
    install_timers, PHASES, usd_gbp_rates, FIRST_DAY), loaded by path and pointed at
    DATABASE_URL."""
    spec = importlib.util.spec_from_file_location(
        "bench_sharing_ingest_helpers", HERE / "ingest_job.py"
    )
    it = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = it  # its generator's pool pickles its functions by name
    spec.loader.exec_module(it)
    it.DSN = os.environ["DATABASE_URL"]
    it.sql.__defaults__ = (it.DSN,)
    return it


def ingest_day(rows: int, seed: int = 4) -> dict:
    """A day file of `rows` new transactions (the ingest benchmark's generator: its first
    day, new transaction ids), ingested as one run on top of what the table holds."""
    from django.conf import settings

    from datalake.models import Resource
    from ingestion.daily.services import ingestion_runs_execute
    from ingestion.models import IngestionRun, RunStatus

    it = ingest_helpers()
    lake = Path(settings.LAKE_ROOT)
    t0 = time.perf_counter()
    files = it.generate(lake, rows, 1, seed)
    generated = time.perf_counter() - t0
    days = [it.FIRST_DAY + dt.timedelta(days=i) for i in range(-3, 2)]
    values = ", ".join(
        f"('{d.isoformat()}', '{c}', {r})" for d in days for c, r in it.usd_gbp_rates(d).items()
    )
    it.sql(
        [
            "INSERT INTO exchange_rates (date, currency, rate) VALUES "
            f"{values} ON CONFLICT DO NOTHING",
            "CHECKPOINT",
        ]
    )
    before = Resource.objects.get(name="transactions").current_version
    it.install_timers()
    it.PHASES.clear()
    run = IngestionRun.objects.create(
        source="transactions", path=f"landing/transactions/{files[0]['day']}.jsonl"
    )
    t0 = time.perf_counter()
    (done,) = ingestion_runs_execute([run.pk])
    seconds = time.perf_counter() - t0
    if done.status != RunStatus.SUCCEEDED:
        raise SystemExit(f"run {done.pk} {done.status}: {done.error}")
    after = Resource.objects.get(name="transactions").current_version
    return {
        "rows": rows,
        "generated_s": round(generated, 1),
        "seconds": round(seconds, 3),
        "rows_loaded": done.rows_loaded,
        "rows_rejected": done.rows_rejected,
        "version_before": before,
        "version": after,
        "phases": {k: round(v, 3) for k, v in sorted(it.PHASES.items())},
    }


def counts(countries: list[str]) -> dict:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*), count(*) FILTER (WHERE country = ANY(%s)) FROM transactions "
            "WHERE valid_to IS NULL",
            [countries],
        )
        total, kept = cur.fetchone()
    return {"current": total, "in_filter": kept}
