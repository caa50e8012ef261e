"""The Django side of the `small_files` benchmark (bench/scenarios/small_files.py), run in
the interpreter of the tree measured:

    python bench/scenarios/_small_files_job.py '<json options>'    (cwd: the tree's root;
        DATABASE_URL, LAKE_ROOT and DJANGO_SETTINGS_MODULE set by the harness)

The `ingest` benchmark's daily files (bench/scenarios/ingest_job.py: same generator, same
seed), `--files` of them, each ingested as a batch of its own through the real path (an
`IngestionRun`, then `ingestion_runs_execute([id])`, what `ingestion.run_batch` runs), as
daily arrivals are, in each mode of `order` on emptied tables (exchange rates recreated):

    resident    SPARK_DRIVER_IDLE_SECONDS=300, the resident driver stopped first: the
                first file pays the JVM's and session's start, the others find it
    per-batch   SPARK_DRIVER_IDLE_SECONDS=0: a spark-submit of its own for every file

Prints one `SMALL_FILES_RESULT <json>` line.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest_job  # the ingest benchmark's data and reset, in this folder

IDLE_SECONDS = {"resident": 300.0, "per-batch": 0.0}


def say(text: str) -> None:
    print(text, flush=True)


def one_file(f: dict) -> dict:
    """A daily file alone, as a batch of its own; its wall time and facts."""
    from ingestion.daily import spark
    from ingestion.daily.services import ingestion_runs_execute
    from ingestion.models import IngestionRun, RunStatus

    run = IngestionRun.objects.create(
        source="transactions", path=f"landing/transactions/{f['day']}.jsonl"
    )
    t0 = time.perf_counter()
    (done,) = ingestion_runs_execute([run.pk])
    seconds = time.perf_counter() - t0
    assert done.status == RunStatus.SUCCEEDED, f"run {done.pk} {done.status}: {done.error}"
    assert (done.rows_loaded, done.rows_rejected) == (f["lines"], 0), (done.pk, done.rows_loaded)
    log = Path(os.environ["LAKE_ROOT"]) / "work" / "runs" / f"{done.pk}-spark.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    driver = spark._resident
    return {
        "day": f["day"],
        "run_id": done.pk,
        "seconds": round(seconds, 3),
        "rows_loaded": done.rows_loaded,
        "session_started": "SparkContext: Running Spark" in text,
        "driver_pid": driver.process.pid if driver is not None else None,
        "load1_after": ingest_job.load1(),
    }


def one_pass(mode: str, files: list[dict], rate_days: list[dt.date]) -> dict:
    from django.conf import settings

    from ingestion.daily import spark

    spark.stop_resident_driver()  # the resident mode's first file pays the driver's start
    settings.SPARK_DRIVER_IDLE_SECONDS = IDLE_SECONDS[mode]
    ingest_job.reset_state(rate_days)
    records = [one_file(f) for f in files]
    if mode == "resident":  # one driver served every file: none died or was started again
        pids = {r["driver_pid"] for r in records}
        assert len(pids) == 1 and None not in pids, f"resident drivers: {pids}"
    stored = ingest_job.sql("SELECT count(*) FROM transactions WHERE valid_to IS NULL")[0][0][0]
    assert stored == sum(f["lines"] for f in files), stored
    seconds = [r["seconds"] for r in records]
    out = {
        "mode": mode,
        "first_s": seconds[0],
        "median_s": statistics.median(seconds[1:]) if len(seconds) > 1 else None,
        "total_s": round(sum(seconds), 3),
        "sessions_started": sum(r["session_started"] for r in records),
        "files": records,
    }
    say(
        f"  {mode}: first {out['first_s']:.1f} s, the others' median "
        f"{out['median_s'] or 0:.1f} s, all {out['total_s']:.1f} s "
        f"({out['sessions_started']} Spark sessions started)"
    )
    return out


def main(options: dict) -> dict:
    rows, count = options["rows"], options["files"]
    lake = Path(os.environ["LAKE_ROOT"])
    lake.mkdir(parents=True, exist_ok=True)
    result: dict = {"rows": rows, "files": count}
    try:
        files = ingest_job.generate(lake, rows, count, options["seed"])
        shutil.rmtree(lake / "copy_csv", ignore_errors=True)  # the ingest bench's COPY input
        result["jsonl_bytes"] = sum(os.path.getsize(f["jsonl"]) for f in files)
        say(
            f"generated {rows:,} rows in {count} daily files ({result['jsonl_bytes'] / 1e3:.0f} kB)"
        )
        import django

        django.setup()
        from django.conf import settings

        from ingestion.daily import spark

        result["settings"] = {
            "SPARK_MASTER": settings.SPARK_MASTER,
            "SPARK_DRIVER_MEMORY": settings.SPARK_DRIVER_MEMORY,
            "SPARK_SUBMIT_CONF": settings.SPARK_SUBMIT_CONF,
            "database": settings.DATABASES["default"]["NAME"],
        }
        first = ingest_job.FIRST_DAY
        rate_days = [first + dt.timedelta(days=i) for i in range(-3, count + 1)]
        try:
            result["passes"] = [
                one_pass(mode, files, rate_days) for mode in options["order"].split(",")
            ]
        finally:
            spark.stop_resident_driver()
    finally:
        if not options["keep"]:
            shutil.rmtree(lake, ignore_errors=True)
    return result


if __name__ == "__main__":
    out = main(json.loads(sys.argv[1]))
    print("SMALL_FILES_RESULT " + json.dumps(out), flush=True)
