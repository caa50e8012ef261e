"""HTTP benchmark of GET /api/v1/invoices/{invoice_no}/ on the full retail data (issue 8).

    .venv/bin/python bench/legacy/invoice_http.py [--duration 20] [--connections 16] [--rounds 3]

Run from the repository root, when no other benchmark runs. It creates and migrates
its own database (`datalake_bench_retail`), ingests the whole UCI file
(`online_retail.csv.gz`, 541,909 rows, 25,900 invoices) through the real ingestion
path (spark-submit and the versioned merges; skipped when already loaded; the search
index, which this endpoint does not read, is off while loading), and issues a token
to the `bench` user holding `read` on retail_invoices and retail_invoice_items (not
staff: the grant checks are part of the cost). It starts gunicorn (2 sync workers,
bench.settings, request log on) on 127.0.0.1:8771, checks a sample of invoices once
(200, every item, the total against SQL), then drives wrk (2 threads, 16 connections)
over `--invoices` invoice numbers drawn at random (seeded) from all of them, each
connection walking the list from its own point: warm-up, then the timed run, per
round. For scale, the bare-DRF ceiling of bench/legacy/rows_http.py runs too, outside and
under /api/ (request-logged), and the invoices on a second gunicorn without the
request-log middleware (127.0.0.1:8772, bench.settings_nolog); one scenario at a
time.

Target (issue 8): p50 < 15 ms, taken on one connection's sequential walk of the
invoices (before and after the wrk rounds; wrk's figures are given for scale). Writes
bench/results/invoice_http-<timestamp>.json and prints a markdown table. gunicorn is
stopped at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import psycopg

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import rows_http as base  # noqa: E402  (bench/ is sys.path[0] when run as a script)

DB_NAME = os.environ.get("BENCH_DATABASE", "datalake_bench") + "_retail"  # run.py --database
PORT = 8771  # rows_http: 8765-8766, metrics_http: 8767
BASE = f"http://{base.HOST}:{PORT}"
NOLOG_PORT = 8772  # the same stack without the request-log middleware (information)
NOLOG_BASE = f"http://{base.HOST}:{NOLOG_PORT}"
# shared/ beside the checkout (/work/shared for /work/main and for /work/wt/<name>).
RETAIL_FILE = next(
    (
        p / "shared/data/online_retail/online_retail.csv.gz"
        for p in BENCH.parents
        if (p / "shared/data/online_retail/online_retail.csv.gz").is_file()
    ),
    Path("/work/shared/data/online_retail/online_retail.csv.gz"),
)
LAKE = Path(os.environ.get("BENCH_RETAIL_LAKE", "/tmp/datalake_bench_retail_lake"))
RESOURCES = ("retail_invoices", "retail_invoice_items")
TARGET_P50_MS = 15.0
SCENARIOS = ("ceiling", "ceiling_logged", "invoice", "invoice_nolog")
LABELS = {
    "ceiling": "(scale) ceiling: bare DRF view, same auth, 10 fixed rows",
    "ceiling_logged": "(scale) the ceiling under /api/, so request-logged",
    "invoice": "GET /api/v1/invoices/{invoice_no}/",
    "invoice_nolog": "(info) the same without the request-log middleware",
}
SERVER_OF = {"invoice_nolog": NOLOG_BASE}
CEILING_PATHS = {"ceiling": "/bench/ceiling/", "ceiling_logged": "/api/bench/ceiling/"}


def prepare_database() -> None:
    """Create and migrate the bench's database; ingest the retail file unless loaded."""
    with psycopg.connect(base.ADMIN_URL, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone()
        if not found:
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')
            base.log(f"created database {DB_NAME}")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        cwd=base.ROOT,
        env=base.ENV,
        check=True,
    )


def load_retail() -> None:
    from django.conf import settings

    from ingestion.daily.services import ingestion_run_execute
    from ingestion.models import IngestionRun, RunStatus

    done = IngestionRun.objects.filter(source="retail", status=RunStatus.SUCCEEDED)
    if done.filter(path=str(RETAIL_FILE)).exists():
        base.log("retail data already loaded")
        return
    settings.SEARCH_INDEX_ENABLED = False  # not read by this endpoint; saves the load time
    base.log(f"ingesting {RETAIL_FILE.name} through spark-submit (a few minutes)")
    started = time.monotonic()
    run = IngestionRun.objects.create(source="retail", path=str(RETAIL_FILE))
    run = ingestion_run_execute(run.pk)
    if run.status != RunStatus.SUCCEEDED:
        sys.exit(f"the retail ingestion failed: {run.error}")
    base.log(f"loaded {run.rows_loaded:,} rows in {time.monotonic() - started:.0f} s")
    with psycopg.connect(base.DB_URL, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE retail_invoices, retail_invoice_items")


def sample_invoices(count: int, seed: int) -> tuple[list[str], dict]:
    """`count` invoice numbers drawn at random, and the item counts of the sample."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "SELECT i.invoice_no, count(t.line) FROM retail_invoices i "
            "JOIN retail_invoice_items t ON t.invoice_no = i.invoice_no AND t.valid_to IS NULL "
            "WHERE i.valid_to IS NULL GROUP BY i.invoice_no ORDER BY i.invoice_no"
        )
        rows = cur.fetchall()
    if len(rows) < 25_000:
        sys.exit(f"only {len(rows):,} invoices in {DB_NAME}: the full file is not loaded")
    picked = random.Random(seed).sample(rows, min(count, len(rows)))
    items = sorted(n for _, n in picked)
    stats = {
        "invoices_total": len(rows),
        "sampled": len(picked),
        "items_median": statistics.median(items),
        "items_p90": items[int(len(items) * 0.9)],
        "items_max": items[-1],
    }
    return [no for no, _ in picked], stats


def check_sample(numbers: list[str], token: str, checks: int = 50) -> None:
    """Each checked invoice answers 200 with every item and the total SQL computes."""
    from django.db import connection

    for number in numbers[:checks]:
        status, body = base.get(f"/api/v1/invoices/{number}/", token, base=BASE)
        if status != 200 or body is None:
            sys.exit(f"invoice {number}: answered {status}")
        with connection.cursor() as cur:
            cur.execute(
                "SELECT count(*), round(coalesce(sum(quantity * unit_price), 0), 2) "
                "FROM retail_invoice_items WHERE invoice_no = %s AND valid_to IS NULL",
                [number],
            )
            items, total = cur.fetchone()
        if len(body["items"]) != items or Decimal(body["total"]) != total:
            sys.exit(f"invoice {number}: {len(body['items'])} items, total {body['total']}")
    base.log(f"checked {min(checks, len(numbers))} invoices: items and totals right")


def wrk_paths(paths_file: Path, token: str, seconds: int, connections: int, url: str) -> dict:
    command = [
        "wrk", "-t", str(base.WRK_THREADS), "-c", str(connections), "-d", f"{seconds}s",
        "--timeout", "30s", "-s", str(BENCH / "invoice_http.lua"), url,
    ]  # fmt: skip
    env = {**os.environ, "BENCH_TOKEN": token, "BENCH_PATHS": str(paths_file)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 90)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            return json.loads(line.removeprefix("BENCH_RESULT "))
    raise RuntimeError(f"wrk printed no result (exit {done.returncode}): {done.stderr.strip()}")


def run_rounds(paths_file: Path, token: str, args) -> dict[str, list[dict]]:
    idle = {url: base.idle_latency(token, base=url) for url in (BASE, NOLOG_BASE)}
    base.log(
        "idle ceiling request: " + ", ".join(f"{u} {t * 1000:.1f} ms" for u, t in idle.items())
    )
    runs: dict[str, list[dict]] = {name: [] for name in SCENARIOS}
    for round_no in range(1, args.rounds + 1):
        for name in SCENARIOS:
            url = SERVER_OF.get(name, BASE)
            for seconds in ([args.warmup] if args.warmup else []) + [args.duration]:
                if name in CEILING_PATHS:
                    path = CEILING_PATHS[name]
                    result = base.wrk(path, token, seconds, args.connections, url)
                else:
                    result = wrk_paths(paths_file, token, seconds, args.connections, url)
                result["drain_s"] = round(base.drain(token, idle[url], base=url), 1)
            result["server"] = url
            result["loadavg_after"] = os.getloadavg()
            runs[name].append(result)
            errors = sum(result["errors"].values())
            base.log(
                f"round {round_no} {name}: {result['rps']:.0f} req/s, p50 {result['p50_ms']:.1f} "
                f"ms, p99 {result['p99_ms']:.1f} ms" + (f", {errors} ERRORS" if errors else "")
            )
    return runs


def single_walk(numbers: list[str], token: str, most: int = 500) -> dict:
    """One connection, one invoice after the other (`rows_http.one_connection`)."""
    paths = [f"/api/v1/invoices/{number}/" for number in numbers[:most]]
    return base.one_connection(paths, token, base=BASE, most=len(paths))


def summarise(runs: dict[str, list[dict]]) -> dict[str, dict]:
    figures = {}
    for name, results in runs.items():
        figures[name] = {
            key: statistics.median(r[key] for r in results)
            for key in ("rps", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "max_ms")
        }
        figures[name]["requests"] = sum(r["requests"] for r in results)
        figures[name]["errors"] = sum(sum(r["errors"].values()) for r in results)
    return figures


def table(figures: dict) -> str:
    lines = [
        "| scenario (wrk, 16 connections) | req/s | p50 ms | p90 ms | p99 ms |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name in SCENARIOS:
        f = figures[name]
        lines.append(
            f"| {LABELS[name]} | {f['rps']:,.0f} | {f['p50_ms']:.1f} | {f['p90_ms']:.1f} | "
            f"{f['p99_ms']:.1f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=20, help="seconds of each timed run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=5, help="seconds of warm-up per scenario")
    parser.add_argument("--rounds", type=int, default=3, help="repeat, take medians")
    parser.add_argument("--invoices", type=int, default=2000, help="distinct invoices walked")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get update && apt-get install -y wrk")
    base.configure(DB_NAME)
    base.ENV["LAKE_ROOT"] = str(LAKE)
    LAKE.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, base._raise_exit)
    base.RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")

    prepare_database()
    os.environ["LAKE_ROOT"] = str(LAKE)
    base.django_setup()
    load_retail()
    token = base.bench_token(RESOURCES)
    numbers, sample = sample_invoices(args.invoices, args.seed)
    paths_file = base.RESULTS / f"invoice_http-paths-{stamp}.txt"
    paths_file.write_text("".join(f"/api/v1/invoices/{n}/\n" for n in numbers))
    info = base.machine()
    log_path = base.RESULTS / f"gunicorn-invoice-{stamp}.log"
    nolog_path = base.RESULTS / f"gunicorn-invoice-nolog-{stamp}.log"
    procs = []
    try:
        procs.append(base.start_gunicorn(log_path, PORT))
        procs.append(base.start_gunicorn(nolog_path, NOLOG_PORT, base.NOLOG_SETTINGS))
        base.wait_until_up(procs[0], log_path, base=BASE)
        base.wait_until_up(procs[1], nolog_path, base=NOLOG_BASE)
        check_sample(numbers, token)
        single_walk(numbers, token, most=100)  # warm-up
        singles = [single_walk(numbers, token)]
        runs = run_rounds(paths_file, token, args)
        singles.append(single_walk(numbers, token))
        for one in singles:
            base.log(f"one connection: p50 {one['p50_ms']:.1f} ms, p99 {one['p99_ms']:.1f} ms")
    finally:
        for proc in procs:
            base.stop_gunicorn(proc)
        paths_file.unlink(missing_ok=True)

    figures = summarise(runs)
    invoice = figures["invoice"]
    single_p50 = statistics.median(one["p50_ms"] for one in singles)
    passed = single_p50 < TARGET_P50_MS and invoice["errors"] == 0
    report = {
        "benchmark": "invoice_http",
        "started": stamp,
        "command": "python bench/legacy/invoice_http.py " + " ".join(argv or sys.argv[1:]),
        "database": DB_NAME,
        "sample": sample,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "rounds": args.rounds,
        "connections": args.connections,
        "wrk_threads": base.WRK_THREADS,
        "gunicorn_workers": base.WORKERS,
        "machine": info,
        "runs": runs,
        "figures": figures,
        "single": singles,
        "single_p50_ms": single_p50,
        "loadavg_after": os.getloadavg(),
        "target_p50_ms": TARGET_P50_MS,
        "passed": passed,
    }
    out = base.RESULTS / f"invoice_http-{stamp}.json"
    out.write_text(json.dumps(report, indent=2))
    print()
    print(table(figures))
    print(
        f"\nGET /api/v1/invoices/{{invoice_no}}/, one connection, sequential: p50 "
        f"{single_p50:.1f} ms (median of the runs before and after wrk); "
        f"target p50 < {TARGET_P50_MS:.0f} ms: {'PASS' if passed else 'FAIL'}"
    )
    print()
    print(
        f"{sample['sampled']:,} of {sample['invoices_total']:,} invoices walked; items per "
        f"invoice: median {sample['items_median']}, p90 {sample['items_p90']}, "
        f"max {sample['items_max']}"
    )
    print(f"{'TARGET PASSES' if passed else 'TARGET FAILS'}; details in {out}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
