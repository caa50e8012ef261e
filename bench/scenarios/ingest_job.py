"""The Django side of the `ingest` benchmark (bench/scenarios/ingest.py), run in the
interpreter of the tree measured:

    python bench/scenarios/ingest_job.py '<json options>'    (cwd: the tree's root;
        DATABASE_URL, LAKE_ROOT and DJANGO_SETTINGS_MODULE set by the harness)

Generates the daily files, times the real path (an `IngestionRun` per file, then
`ingestion.daily.services.ingestion_runs_execute`, what the Celery task
`ingestion.run_batch` runs, its phases timed by wrapping the service's functions from
outside), the COPY limit into a fresh `(LIKE transactions INCLUDING ALL)` table, and
each whole retail file; prints one `INGEST_RESULT <json>` line. Imports nothing from
`bench`: targets, tables and the machine's facts are the harness's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import gzip
import json
import multiprocessing
import os
import random
import shutil
import sys
import time
import uuid
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import orjson
import psycopg

DSN = os.environ.get("DATABASE_URL", "")  # the benchmark's database, set by the harness
RETAIL_FILES = [
    Path("/work/shared/data/online_retail/online_retail.csv.gz"),
    Path("/work/shared/data/online_retail/online_retail_uci_dates.csv.gz"),
]
RETAIL_ROWS = 541_909
RETAIL_TARGET_S = 90.0
FIRST_DAY = dt.date(2025, 3, 1)
COPY_COLUMNS = [
    "transaction_id",
    "user_id",
    "timestamp",
    "transaction_type",
    "payment_method",
    "country",
    "product_id",
    "product_category",
    "quantity",
    "amount",
    "currency",
    "amount_eur",
    "status",
    "customer_rating",
    "valid_from",
]
TRUNCATE = [
    "transactions",
    "lineage_version",
    "ingestion_reject",
    "ingestion_ingestionrun",
    "retail_invoice_items",
    "retail_invoices",
    "retail_customers",
    "retail_stock_codes",
    # kept by every merge, in the merge's transaction
    "metrics_product_day",
    "metrics_user_type_day",
    "metrics_minute",
    "search_entries",
]

# --------------------------------------------------------------------------- data


def usd_gbp_rates(day: dt.date) -> dict[str, str]:
    """Deterministic ECB-like rates (units per 1 EUR), as numeric(18,6) prints them."""
    n = (day - FIRST_DAY).days
    usd = Decimal("1.0830") + Decimal(n % 11) * Decimal("0.0017")
    gbp = Decimal("0.8440") + Decimal(n % 7) * Decimal("0.0009")
    return {"USD": f"{usd:.6f}", "GBP": f"{gbp:.6f}"}


COUNTRIES = (
    ["FR"] * 16
    + ["DE"] * 15
    + ["ES"] * 9
    + ["IT"] * 9
    + ["NL"] * 6
    + ["BE"] * 4
    + ["PT"] * 3
    + ["AT"] * 3
    + ["IE"] * 2
    + ["GB"] * 8
    + ["US"] * 10
    + ["CH", "PL", "SE", "DK", "FI", "CZ", "GR", "CA", "JP", "LU", "NO", "RO", "HU"]
)
TYPES = ["online"] * 5 + ["in_store"] * 3 + ["mobile"] * 3 + ["subscription"]
PAYMENTS = ["card"] * 10 + ["paypal"] * 4 + ["bank_transfer"] * 2 + ["cash"] * 2 + ["voucher"]
STATUSES = ["completed"] * 85 + ["pending"] * 5 + ["failed"] * 4 + ["refunded"] * 4 + ["cancelled"]
CATEGORIES = [
    "electronics",
    "books",
    "clothing",
    "home",
    "garden",
    "toys",
    "sports",
    "beauty",
    "grocery",
    "music",
    "software",
    "health",
]
CENT = Decimal("0.01")


def write_day(task: tuple[int, int, str, str, int]) -> tuple[str, int]:
    """One day's JSONL (the real input) and CSV (the same rows, typed, for the COPY)."""
    index, count, jsonl_path, csv_path, seed = task
    rnd = random.Random(seed * 1_000_003 + index)
    day = FIRST_DAY + dt.timedelta(days=index)
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    rates = {
        d.isoformat(): usd_gbp_rates(d) for d in (day - dt.timedelta(days=1), day)
    }  # a +01:00 time never leaves [day - 1, day]
    one_hour = dt.timedelta(hours=1)
    plus_one = dt.timezone(one_hour)
    with open(jsonl_path, "wb") as jl, open(csv_path, "w", encoding="utf-8") as cs:
        jl_lines, cs_lines = [], []
        for _ in range(count):
            tx_id = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
            stamp = start + dt.timedelta(microseconds=rnd.randrange(86_400_000_000))
            if rnd.random() < 0.25:
                ts_text = stamp.astimezone(plus_one).isoformat(timespec="milliseconds")
            else:
                ts_text = stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            stamp_ms = stamp.replace(microsecond=stamp.microsecond // 1000 * 1000)
            product = rnd.randrange(20_000)
            unit = 1.5 + (product * 7919 % 4000) / 20.0
            quantity = min(1 + int(rnd.expovariate(0.9)), 20)
            amount = round(unit * quantity, 2)
            roll = rnd.random()
            currency = "EUR" if roll < 0.88 else ("USD" if roll < 0.97 else "GBP")
            category = None if rnd.random() < 0.03 else CATEGORIES[product % len(CATEGORIES)]
            rating = None if rnd.random() < 0.6 else rnd.randint(1, 5)
            obj = {
                "transaction_id": tx_id,
                "user_id": f"u{rnd.randrange(250_000):07d}",
                "timestamp": ts_text,
                "transaction_type": rnd.choice(TYPES),
                "payment_method": rnd.choice(PAYMENTS),
                "country": rnd.choice(COUNTRIES),
                "product_id": f"p{product:06d}",
                "product_category": category,
                "quantity": quantity,
                "amount": amount,
                "currency": currency,
                "status": rnd.choice(STATUSES),
                "customer_rating": rating,
            }
            if currency == "EUR" and rnd.random() < 0.5:
                del obj["currency"]  # optional, default EUR
            if category is None and rnd.random() < 0.5:
                del obj["product_category"]
            jl_lines.append(orjson.dumps(obj))
            amount_dec = Decimal(str(amount)).quantize(CENT, ROUND_HALF_UP)
            if currency == "EUR":
                amount_eur = amount_dec
            else:
                rate = Decimal(rates[stamp.date().isoformat()][currency])
                amount_eur = (amount_dec / rate).quantize(CENT, ROUND_HALF_UP)
            cs_lines.append(
                ",".join(
                    (
                        tx_id,
                        obj["user_id"],
                        stamp_ms.isoformat(),
                        obj["transaction_type"],
                        obj["payment_method"],
                        obj["country"],
                        obj["product_id"],
                        category or "",
                        str(quantity),
                        str(amount_dec),
                        currency,
                        str(amount_eur),
                        obj["status"],
                        "" if rating is None else str(rating),
                        str(index + 1),
                    )
                )
            )
            if len(jl_lines) >= 50_000:
                jl.write(b"\n".join(jl_lines) + b"\n")
                cs.write("\n".join(cs_lines) + "\n")
                jl_lines, cs_lines = [], []
        if jl_lines:
            jl.write(b"\n".join(jl_lines) + b"\n")
            cs.write("\n".join(cs_lines) + "\n")
    return jsonl_path, count


def generate(lake: Path, rows: int, days: int, seed: int) -> list[dict]:
    landing = lake / "landing" / "transactions"
    csv_dir = lake / "copy_csv"
    for folder in (landing, csv_dir):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    per_day = [rows // days + (1 if i < rows % days else 0) for i in range(days)]
    tasks = []
    for i, count in enumerate(per_day):
        day = (FIRST_DAY + dt.timedelta(days=i)).isoformat()
        tasks.append((i, count, str(landing / f"{day}.jsonl"), str(csv_dir / f"{day}.csv"), seed))
    with multiprocessing.get_context("fork").Pool(max(1, min(os.cpu_count() or 1, 4))) as pool:
        list(pool.imap_unordered(write_day, tasks))
    return [
        {"day": t[2].rsplit("/", 1)[-1][:10], "lines": t[1], "jsonl": t[2], "csv": t[3]}
        for t in tasks
    ]


# --------------------------------------------------------------------------- database


def sql(statements, dsn: str = DSN) -> list:
    out = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in [statements] if isinstance(statements, str) else statements:
            cur = conn.execute(statement)
            out.append(cur.fetchall() if cur.description else None)
    return out


def reset_state(with_rates: list[dt.date] | None = None) -> None:
    """Empty lake tables, runs, versions; current_version 0; no leftover stages."""
    stages = sql(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
        "AND tablename LIKE 'ingest\\_stage\\_%'"
    )[0]
    statements = [f'DROP TABLE IF EXISTS "{name}"' for (name,) in stages]
    statements += [
        "DROP TABLE IF EXISTS bench_copy_limit",
        # CASCADE: tables added later that reference these (e.g. ingestion_httppull -> runs)
        f"TRUNCATE {', '.join(TRUNCATE)}, exchange_rates RESTART IDENTITY CASCADE",
        "UPDATE datalake_resource SET current_version = 0",
    ]
    if with_rates:
        values = ", ".join(
            f"('{d.isoformat()}', '{c}', {r})"
            for d in with_rates
            for c, r in usd_gbp_rates(d).items()
        )
        statements.append(f"INSERT INTO exchange_rates (date, currency, rate) VALUES {values}")
    # No VACUUM/ANALYZE of the emptied tables: TRUNCATE leaves them "never analyzed"
    # (reltuples -1), as on a fresh install. Analyzed while empty (reltuples 0), the
    # planner believes them empty for good and the merge's INSERT ... NOT EXISTS becomes
    # a nested loop over a seq scan of the table being filled: quadratic (see
    # docs/BENCHMARKS.md, ingestion). `--analyze-empty` measures that case.
    if ANALYZE_EMPTY:
        statements.append("VACUUM ANALYZE")
    statements += ["CHECKPOINT"]
    sql(statements)


# --------------------------------------------------------------------------- timing

PHASES: dict[str, float] = {}
ANALYZE_EMPTY = False  # --analyze-empty


def load1() -> float:
    """The 1-minute load average: the machine is shared, so record how busy it was."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def timed(name: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            PHASES[name] = PHASES.get(name, 0.0) + time.perf_counter() - t0

    return wrapper


def install_timers() -> None:
    """Wrap the service's steps from outside (module attributes), to split the wall time."""
    from datalake.lake import merge
    from ingestion.daily import services

    services.file_checksum = timed("checksum", services.file_checksum)
    services._create_stage = timed("create_stage", services._create_stage)
    services._analyze_stage = timed("analyze_stage", services._analyze_stage)
    services._merge = timed("merge", services._merge)  # the one transaction, with commit
    for source in ("transactions", "retail"):
        services.MERGES[source] = timed("merge_sql", services.MERGES[source])
    execute = merge._execute

    def classified(statement, params=None):
        kind = statement.split(None, 1)[0].lower()
        return timed(f"merge_{kind}", execute)(statement, params)

    merge._execute = classified
    # What every merge keeps current besides the table, in the same transaction: the
    # lake's hooks (datalake.lake.hooks), registered by the apps that own them.
    from datalake.lake import hooks

    def phase(callback) -> str:
        module = getattr(callback, "__module__", "")
        return (
            "search_index"
            if "search" in module
            else "metrics_aggregates"
            if "metrics" in module
            else f"hook {module}"
        )

    for registered in (hooks.WRITTEN, hooks.MERGED):
        registered[:] = [timed(phase(callback), callback) for callback in registered]
    services._drop_stage = timed("drop_stage", services._drop_stage)


def _record(run, seconds: float | None, phases: dict) -> dict:
    return {
        "path": run.path,
        "run_id": run.pk,
        "status": run.status,
        "seconds": None if seconds is None else round(seconds, 3),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "rows_read": run.rows_read,
        "rows_loaded": run.rows_loaded,
        "rows_rejected": run.rows_rejected,
        "rows_added": run.rows_added,
        "version": run.version,
        "phases": {k: round(v, 3) for k, v in sorted(phases.items())},
        "error": run.error[:500],
        "load1_after": load1(),
    }


def run_file(source: str, rel_path: str, expect_read: int | None) -> dict:
    """One file alone (POST /ingestion/runs/, `manage.py ingest`): a Spark job of its own."""
    from ingestion.daily.services import ingestion_run_execute
    from ingestion.models import IngestionRun, RunStatus

    PHASES.clear()
    t0 = time.perf_counter()
    run = IngestionRun.objects.create(source=source, path=rel_path)
    run = ingestion_run_execute(run.pk)
    record = _record(run, time.perf_counter() - t0, PHASES)
    assert run.status == RunStatus.SUCCEEDED, f"run {run.pk} {run.status}: {run.error}"
    if expect_read is not None:
        assert run.rows_read == expect_read, record
    assert run.rows_read == run.rows_loaded + run.rows_rejected, record
    return record


# --------------------------------------------------------------------------- phases


def spark_overhead(lake: Path, files: list[dict], repeats: int = 2) -> float:
    """A run of a 100-line file, minus its merge: the fixed cost of one Spark job (JVM,
    session), paid once per batch of files."""
    from ingestion.daily.services import ingestion_run_execute
    from ingestion.models import IngestionRun

    calib = lake / "calib" / f"{files[0]['day']}.jsonl"
    calib.parent.mkdir(parents=True, exist_ok=True)
    with open(files[0]["jsonl"], "rb") as src:
        calib.write_bytes(b"".join(next(src) for _ in range(min(100, files[0]["lines"]))))
    best = float("inf")
    for i in range(repeats):
        calib.write_bytes(calib.read_bytes()[:-1] + b" " * i + b"\n")  # a new checksum
        PHASES.clear()
        run = IngestionRun.objects.create(source="transactions", path=str(calib))
        t0 = time.perf_counter()
        ingestion_run_execute(run.pk)
        best = min(best, time.perf_counter() - t0 - PHASES.get("merge", 0.0))
    return round(best, 3)


def bench_ingest(files: list[dict]) -> dict:
    """The daily path: one run per file, executed in date order by one batch (what the
    beat's scan queues: `ingestion.run_batch`): one Spark job for the files, each merged
    as soon as it is staged, while Spark reads the next."""
    from ingestion.daily.services import ingestion_runs_execute
    from ingestion.models import IngestionRun, RunStatus

    PHASES.clear()
    runs = [
        IngestionRun.objects.create(
            source="transactions", path=f"landing/transactions/{f['day']}.jsonl"
        )
        for f in files
    ]
    t0 = time.perf_counter()
    done = ingestion_runs_execute([run.pk for run in runs])
    total = time.perf_counter() - t0
    records = []
    for run, f in zip(done, files, strict=True):
        rec = _record(run, None, {})
        assert run.status == RunStatus.SUCCEEDED, rec
        assert rec["rows_loaded"] == f["lines"] and rec["rows_rejected"] == 0, rec
        records.append(rec)
    rows = sum(f["lines"] for f in files)
    stored = sql("SELECT count(*) FROM transactions WHERE valid_to IS NULL")[0][0][0]
    assert stored == rows, (stored, rows)
    print(f"  {len(files)} files in {total:.1f} s", flush=True)
    return {
        "rows": rows,
        "seconds": round(total, 3),
        "rows_per_s": round(rows / total),
        "phases_total": {k: round(v, 2) for k, v in sorted(PHASES.items())},
        "load1_mean": round(load1(), 2),
        "files": records,
    }


def bench_copy(files: list[dict]) -> dict:
    cols = ", ".join(f'"{c}"' for c in COPY_COLUMNS)
    sql(
        [
            "DROP TABLE IF EXISTS bench_copy_limit",
            "CREATE TABLE bench_copy_limit (LIKE transactions INCLUDING ALL)",
            "VACUUM ANALYZE transactions",  # the ingest's autovacuum work is not billed here
            "CHECKPOINT",
        ]
    )
    indexes = sql("SELECT count(*) FROM pg_indexes WHERE tablename = 'bench_copy_limit'")[0][0][0]
    per_file, loads = [], []
    with psycopg.connect(DSN, autocommit=True) as conn:
        t0 = time.perf_counter()
        for f in files:
            t1 = time.perf_counter()
            with (
                conn.cursor() as cur,
                cur.copy(f"COPY bench_copy_limit ({cols}) FROM STDIN (FORMAT csv)") as copy,
                open(f["csv"], "rb") as handle,
            ):
                while chunk := handle.read(1 << 20):
                    copy.write(chunk)
            per_file.append(round(time.perf_counter() - t1, 3))
            loads.append(load1())
        total = time.perf_counter() - t0
    rows = sum(f["lines"] for f in files)
    stored = sql("SELECT count(*) FROM bench_copy_limit")[0][0][0]
    assert stored == rows, (stored, rows)
    return {
        "rows": rows,
        "seconds": round(total, 3),
        "rows_per_s": round(rows / total),
        "indexes": indexes,
        "files_seconds": per_file,
        "load1_mean": round(sum(loads) / len(loads), 2),
    }


def bench_retail(lake: Path, rates_days: list[dt.date]) -> list[dict]:
    folder = lake / "landing" / "retail"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for src in RETAIL_FILES:
        shutil.rmtree(folder)
        folder.mkdir()
        shutil.copyfile(src, folder / src.name)
        with gzip.open(src, "rt", encoding="utf-8", newline="") as handle:
            lines = sum(1 for _ in handle) - 1
        reset_state(rates_days)
        rec = run_file("retail", f"landing/retail/{src.name}", None)
        rec.update(file=src.name, data_lines=lines, passed=rec["seconds"] < RETAIL_TARGET_S)
        assert rec["rows_read"] == RETAIL_ROWS, rec
        counts = sql(
            [
                f"SELECT count(*) FROM {t} WHERE valid_to IS NULL"
                for t in (
                    "retail_invoice_items",
                    "retail_invoices",
                    "retail_customers",
                    "retail_stock_codes",
                )
            ]
        )
        rec["table_rows"] = [c[0][0] for c in counts]
        out.append(rec)
        print(
            f"  retail {src.name}: {rec['seconds']:.1f} s, loaded {rec['rows_loaded']}, "
            f"rejected {rec['rows_rejected']}",
            flush=True,
        )
    shutil.rmtree(folder)
    return out


# --------------------------------------------------------------------------- main


def main(options: dict) -> dict:
    global ANALYZE_EMPTY
    ANALYZE_EMPTY = options["analyze_empty"]
    rows, days = options["rows"], options["days"]
    lake = Path(os.environ["LAKE_ROOT"])
    lake.mkdir(parents=True, exist_ok=True)
    result: dict = {"rows": rows, "days": days}
    try:
        t0 = time.perf_counter()
        files = generate(lake, rows, days, options["seed"])
        print(
            f"generated {rows:,} rows in {len(files)} files "
            f"({sum(os.path.getsize(f['jsonl']) for f in files) / 1e6:.0f} MB JSONL) "
            f"in {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
        import django

        django.setup()
        from django.conf import settings

        install_timers()
        result["settings"] = {
            "SPARK_MASTER": settings.SPARK_MASTER,
            "SPARK_DRIVER_MEMORY": settings.SPARK_DRIVER_MEMORY,
            "LAKE_ROOT": str(settings.LAKE_ROOT),
            "database": settings.DATABASES["default"]["NAME"],
        }
        last = FIRST_DAY + dt.timedelta(days=days)
        rate_days = [FIRST_DAY + dt.timedelta(days=i) for i in range(-3, days + 1)]
        assert rate_days[-1] == last
        if not options["skip_retail"]:
            print("retail files, each on empty tables:", flush=True)
            result["retail"] = bench_retail(lake, rate_days)
        reset_state(rate_days)
        result["spark_fixed_overhead_s"] = spark_overhead(lake, files)
        print(f"spark-submit fixed cost: {result['spark_fixed_overhead_s']} s", flush=True)
        reset_state(rate_days)
        print(f"real path, {len(files)} files:", flush=True)
        result["ingest"] = bench_ingest(files)
        print(f"COPY limit, {len(files)} streams:", flush=True)
        result["copy"] = bench_copy(files)
    finally:
        if not options["keep"]:
            shutil.rmtree(lake, ignore_errors=True)
            with contextlib.suppress(psycopg.Error):
                sql("DROP TABLE IF EXISTS bench_copy_limit")
    return result


if __name__ == "__main__":
    out = main(json.loads(sys.argv[1]))
    print("INGEST_RESULT " + json.dumps(out), flush=True)
