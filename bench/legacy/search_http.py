"""Search benchmark (issue 7): latency over HTTP on 10M transactions, index build, ingestion cost.

    .venv/bin/python bench/legacy/search_http.py [--rows 10000000] [--rounds 3] [--duration 20]
        [--connections 16] [--ingest-rows 1000000] [--ingest-days 10] [--ingest-rounds 2]

Run from the repository root, with no other benchmark running (it waits for them:
`pgrep -af bench/` must show only this one). Three parts, in one run:

1. Index build. Its own database `datalake_bench_search` (created and migrated if
   missing), 10,000,000 transactions loaded with bench/load_transactions.py (SQL, so no
   merge indexes them; skipped when already there), then `search_entries` emptied and
   `manage.py rebuild_search_index` timed (wall clock of the command, and its own
   figure): the first install of the index over a full table. Then `VACUUM (ANALYZE)
   search_entries` (what autovacuum would do after 10M inserts: the planner statistics
   that `query.py` chooses its plan from, and an empty GIN pending list), and the sizes
   of `search_entries` (with each of its indexes) and `transactions`.
2. Search over HTTP. gunicorn (2 sync workers, bench.settings) on 127.0.0.1:8767, a
   token of the `bench` user holding `read` on `transactions` and `raw_transactions`;
   `GET /api/v1/search/?q=<q>&since=2026-01-01` for an id (`TX-07500001`, exactly one
   match), a country name (`Germany`: DE is 14% of the rows) and a frequent word
   (`refunded`: a status of 4% of the rows), plus, for information only, a word of
   middling frequency (`P00005`, a product of ~0.3% of the rows: the worst case of
   the walk plan). Each is checked once (200, the expected matches), walked by one
   connection (200 sequential requests, before and after wrk), then driven by wrk (16
   connections, warm-up then timed run, `--rounds` times, medians). Targets, on the
   one-connection walks (the issue's latency names no concurrency): p50 < 50 ms and
   p99 < 200 ms for the id, the country and the word; wrk's figures for information.
   Also recorded:
   the plan `query.py` picks for each text, the view's time in one process split by
   SQL statement (Django test client, no concurrency), and EXPLAIN (ANALYZE, BUFFERS)
   of the search statements the view ran.
3. Ingestion cost of the index, in a child process on its own database
   `datalake_bench_search_ingest`: `--ingest-rows` transactions in `--ingest-days` daily
   JSON-lines files (bench/ingest_throughput.generate), ingested through the real path
   (`ingestion_run_execute`: checksum, spark-submit, one-transaction merge with its
   search hook) from empty tables, once with the index on (SEARCH_INDEX_ENABLED, the
   default) and once with `settings.SEARCH_INDEX_ENABLED = False` flipped in-process;
   the order alternates between rounds. Cost = 1 - rows/s(on) / rows/s(off), per round
   then the median; target <= 30%. After each indexed pass: one entry per ingested row,
   current, naming its file and line (`raw_file`), per file.

Writes bench/results/search_http-<timestamp>.json and prints markdown tables.
gunicorn is stopped at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parents[1]
RESULTS = ROOT / "bench" / "results"
for _path in (str(ROOT), str(BENCH)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import ingest_throughput as it  # noqa: E402  (imported, not edited)
import psycopg  # noqa: E402
import rows_http as rh  # noqa: E402

from bench import load_transactions as lt  # noqa: E402

DB_NAME = "datalake_bench_search"
INGEST_DB = "datalake_bench_search_ingest"
ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
HOST, PORT = "127.0.0.1", 8767  # not rows_http's 8765/8766
BASE = f"http://{HOST}:{PORT}"
SINCE = "2026-01-01"  # load_transactions' first day: every row is on or after it
P50_TARGET_MS, P99_TARGET_MS, COST_TARGET = 50.0, 200.0, 0.30
GRANTED = ("transactions", "raw_transactions")
SEARCH_TABLE_INDEXES = ("search_doc", "search_key", "search_current_at", "search_raw_at")
METRIC_TABLES = ("metrics_product_day", "metrics_user_type_day", "metrics_minute")


def log(message: str) -> None:
    print(f"[search {time.strftime('%H:%M:%S')}] {message}", flush=True)


def weight(choices, value) -> float:
    return next(w for v, w in choices if v == value) / 100


def scenarios(rows: int) -> dict[str, dict]:
    """The texts searched: an id, a country name, a frequent word (+ one for information)."""
    planted = rows * 3 // 4 + 1
    p5 = (6 / lt.PRODUCTS) ** 0.5 - (5 / lt.PRODUCTS) ** 0.5  # product = floor(5000 u^2)
    return {
        "id": {
            "q": f"TX-{planted:08d}",
            "label": "id",
            "what": f"transaction_id of row {planted:,} (exactly one record)",
            "sql": f"transaction_id = 'TX-{planted:08d}'",
            "expected_share": 1 / rows,
            "target": True,
        },
        "country": {
            "q": "Germany",
            "label": "country name",
            "what": "English name of DE, indexed with the code",
            "sql": "country = 'DE'",
            "expected_share": weight(lt.COUNTRIES, "DE"),
            "target": True,
        },
        "word": {
            "q": "refunded",
            "label": "frequent word",
            "what": "status `refunded`",
            "sql": "status = 'refunded'",
            "expected_share": weight(lt.STATUSES, "refunded"),
            "target": True,
        },
        "mid": {
            "q": "P00005",
            "label": "(info) mid-frequency word",
            "what": "product P00005: just above query.RARE_BELOW (0.2%), the walk's worst case",
            "sql": "product_id = 'P00005'",
            "expected_share": p5,
            "target": False,
        },
    }


def path_of(q: str) -> str:
    return "/api/v1/search/?" + urllib.parse.urlencode({"q": q, "since": SINCE})


def others_running() -> list[str]:
    done = subprocess.run(["pgrep", "-af", "bench/"], capture_output=True, text=True)
    mine = {os.getpid(), os.getppid()}
    return [
        line
        for line in done.stdout.splitlines()
        if line.split(None, 1)[0].isdigit()
        and int(line.split(None, 1)[0]) not in mine
        and "search_http" not in line
    ]


def wait_for_quiet(poll: int = 60) -> None:
    waited = False
    while others := others_running():
        if not waited:
            log("another benchmark runs; waiting (polling every 60 s):\n  " + "\n  ".join(others))
            waited = True
        time.sleep(poll)
    if waited:
        log("no other benchmark runs any more")


def q1(url: str, statement: str, params=None):
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


# -- part 1: the database, the index build, the sizes ----------------------------------


def prepare(args) -> dict:
    """Create/migrate the database, load the rows, then time the index build."""
    exists = q1(ADMIN_URL, "SELECT 1 FROM pg_database WHERE datname = %s", [rh.DB_NAME])
    if not exists:
        q1(ADMIN_URL, f'CREATE DATABASE "{rh.DB_NAME}"')
        log(f"created database {rh.DB_NAME}")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        cwd=ROOT,
        env=rh.ENV,
        check=True,
    )
    t0 = time.perf_counter()
    loaded = lt.load(rh.DB_URL, args.rows, seed=42, replace=True)
    load_s = time.perf_counter() - t0
    build: dict = {"measured": False, "loaded_now": loaded, "load_s": round(load_s, 1)}
    if not args.skip_build:
        # First install over a full table: an empty index, then the product's command.
        q1(rh.DB_URL, "TRUNCATE search_entries")
        q1(rh.DB_URL, "CHECKPOINT")
        log(f"building the index: manage.py rebuild_search_index on {args.rows:,} rows")
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "manage.py", "rebuild_search_index"],
            cwd=ROOT,
            env=rh.ENV,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t0
        if done.returncode:
            sys.exit(f"rebuild_search_index failed ({done.returncode}): {done.stderr[-2000:]}")
        said = re.search(r"indexed ([\d,]+) records in ([\d.]+) s", done.stdout)
        build.update(
            measured=True,
            wall_s=round(wall, 1),
            command_s=float(said.group(2)) if said else None,
            command_output=done.stdout.strip(),
            entries_indexed=int(said.group(1).replace(",", "")) if said else None,
        )
        log(f"index built in {wall:.1f} s (the command says: {done.stdout.strip()})")
    log("VACUUM (ANALYZE) search_entries")
    t0 = time.perf_counter()
    q1(rh.DB_URL, "VACUUM (ANALYZE) search_entries")
    build["vacuum_analyze_s"] = round(time.perf_counter() - t0, 1)
    return build


def sizes() -> dict:
    out = {}
    for rel in ("search_entries", "transactions"):
        out[f"{rel}_total_bytes"] = q1(rh.DB_URL, "SELECT pg_total_relation_size(%s)", [rel])[0][0]
        out[f"{rel}_heap_bytes"] = q1(rh.DB_URL, "SELECT pg_relation_size(%s)", [rel])[0][0]
    for index in SEARCH_TABLE_INDEXES:
        out[f"{index}_bytes"] = q1(rh.DB_URL, "SELECT pg_relation_size(%s)", [index])[0][0]
    rows = q1(
        rh.DB_URL,
        "SELECT (SELECT count(*) FROM search_entries), "
        "(SELECT count(*) FROM search_entries WHERE resource = 'transactions' "
        "AND valid_to IS NULL), (SELECT count(*) FROM transactions WHERE valid_to IS NULL)",
    )[0]
    out.update(search_entries=rows[0], search_entries_transactions=rows[1], transactions=rows[2])
    return out


def shares(cases: dict) -> None:
    """The real share of the rows each text matches (one scan of the table)."""
    cols = ", ".join(f"count(*) FILTER (WHERE {c['sql']})" for c in cases.values())
    counts = q1(rh.DB_URL, f"SELECT count(*), {cols} FROM transactions WHERE valid_to IS NULL")[0]
    for case, n in zip(cases.values(), counts[1:], strict=True):
        case["rows_matching"] = n
        case["share"] = n / counts[0]


# -- part 2: in-process checks, plan, profile, EXPLAIN ---------------------------------


def label_of(sql: str) -> str:
    s = " ".join(sql.split())
    if s.upper().startswith("SET "):
        return "set"
    if "search_entries" in s:
        if "row_number() OVER" in s:
            return "bitmap: 10 per resource, counted"
        if "OFFSET 0" in s:
            return "bitmap: prefix probe (<= limit + 1)"
        if "count(*)" in s:
            return "walk: count (<= 1001)"
        if "ORDER BY e.at DESC" in s:
            return "walk: first 10"
        return "bitmap: every match"
    if "unnest(to_tsvector" in s:
        return "lexemes"
    if "pg_stats" in s:
        return "pg_stats (cached 60 s)"
    if "to_jsonb(t)" in s:
        return "records of the hits"
    return "other (token, grants, resources, request log)"


class Capture:
    def __init__(self):
        self.calls: list[tuple[str, object, float]] = []

    def __call__(self, execute, sql, params, many, context):
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.calls.append((sql, params, (time.perf_counter() - t0) * 1000))


def profile(cases: dict, token: str, runs: int) -> None:
    """Per text: the plan chosen, the view's time in-process by statement, EXPLAIN ANALYZE."""
    from django.db import connection, transaction
    from django.test import Client

    from datalake.search import query

    client = Client()
    freq, _floor = query._frequencies()
    for case in cases.values():
        words = query.lexemes(case["q"])
        case["lexemes"] = words
        case["pg_stats_freq"] = {w: freq.get(w) for w in words}
        case["plan"] = "walk (frequent)" if query.is_frequent(words) else "bitmap (rare)"
        totals, by_label, last = [], [], None
        for _ in range(runs):
            capture = Capture()
            with connection.execute_wrapper(capture):
                t0 = time.perf_counter()
                response = client.get(path_of(case["q"]), HTTP_AUTHORIZATION=f"Token {token}")
                totals.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, (case["q"], response.status_code)
            sums: dict[str, float] = {}
            for sql, _params, ms in capture.calls:
                sums[label_of(sql)] = sums.get(label_of(sql), 0.0) + ms
            sums["python (outside SQL)"] = totals[-1] - sum(ms for *_, ms in capture.calls)
            by_label.append(sums)
            last = capture.calls
        labels = sorted({k for s in by_label for k in s})
        case["inprocess_ms"] = {
            "view_total_median": round(statistics.median(totals), 2),
            "view_total_min": round(min(totals), 2),
            "statements": len(last),
            "by_statement_median": {
                k: round(statistics.median(s.get(k, 0.0) for s in by_label), 2) for k in labels
            },
            "last_run_statements": [
                [label_of(sql), " ".join(sql.split())[:160], round(ms, 2)] for sql, _p, ms in last
            ],
        }
        # EXPLAIN (ANALYZE, BUFFERS) of the search statements, with their SET LOCALs.
        plans, sets, prev_set = [], [], False
        for sql, params, _ms in last:
            kind = label_of(sql)
            if kind == "set":
                if not prev_set:
                    sets = []
                sets.append(sql)
                prev_set = True
                continue
            prev_set = False
            if not kind.startswith(("walk", "bitmap")):
                sets = []
                continue
            with transaction.atomic(), connection.cursor() as cursor:
                for statement in sets:
                    cursor.execute(statement)
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                plan = [r[0] for r in cursor.fetchall()]
            plans.append({"statement": kind, "sets": sets, "sql": " ".join(sql.split()),
                          "params": [str(p) for p in (params or [])], "plan": plan})  # fmt: skip
        case["explain"] = plans
        log(
            f"  {case['q']}: plan {case['plan']}, view in-process "
            f"{case['inprocess_ms']['view_total_median']:.1f} ms median ("
            + ", ".join(
                f"{k} {v:.1f}" for k, v in case["inprocess_ms"]["by_statement_median"].items()
            )
            + ")"
        )


def check(cases: dict, token: str) -> None:
    """Each text answers 200 with matches before it is timed; the id exactly its record."""
    for name, case in cases.items():
        status, body = rh.get(path_of(case["q"]), token, base=BASE)
        found = {r["resource"]: r for r in (body or {}).get("resources", [])}
        if status != 200 or not found:
            sys.exit(f"{name}: {path_of(case['q'])} answered {status} with {body}")
        if name == "id":
            tx = found.get("transactions")
            keys = [h["key"] for h in (tx or {}).get("results", [])]
            if not tx or tx["matches"] != 1 or keys != [case["q"]]:
                sys.exit(f"id {case['q']}: expected exactly it in transactions, got {found}")
        case["answer"] = {
            "total": body["total"],
            "resources": {
                r: {
                    "matches": v["matches"],
                    "capped": v["matches_capped"],
                    "results": len(v["results"]),
                    "first": (v["results"] or [{}])[0].get("key"),
                }
                for r, v in found.items()
            },
        }
        log(f"  {name} q={case['q']}: 200, {case['answer']['resources']}")


def drive(cases: dict, token: str, args) -> dict[str, list[dict]]:
    idle = rh.idle_latency(token, base=BASE)
    log(f"idle ceiling request: {idle * 1000:.1f} ms")
    runs: dict[str, list[dict]] = {name: [] for name in cases}
    for round_no in range(1, args.rounds + 1):
        for name, case in cases.items():
            path = path_of(case["q"])
            if args.warmup:
                rh.wrk(path, token, args.warmup, args.connections, base=BASE)
                rh.drain(token, idle, base=BASE)
            result = rh.wrk(path, token, args.duration, args.connections, base=BASE)
            result["drain_s"] = round(rh.drain(token, idle, base=BASE), 1)
            result["loadavg_after"] = os.getloadavg()
            runs[name].append(result)
            errors = sum(result["errors"].values())
            log(
                f"round {round_no} {name} ({case['q']}): {result['rps']:.0f} req/s, "
                f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms"
                + (f", {errors} ERRORS" if errors else "")
            )
    return runs


def summarise(runs: dict[str, list[dict]]) -> dict[str, dict]:
    figures = {}
    for name, results in runs.items():
        figures[name] = {
            k: statistics.median(r[k] for r in results)
            for k in ("rps", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "max_ms")
        }
        figures[name]["requests"] = sum(r["requests"] for r in results)
        figures[name]["errors"] = sum(sum(r["errors"].values()) for r in results)
    return figures


def http_part(cases: dict, args, stamp: str) -> dict:
    rh.django_setup()
    token = rh.bench_token(GRANTED)
    log("in-process: plan, time by statement, EXPLAIN ANALYZE")
    profile(cases, token, args.profile_runs)
    log_path = RESULTS / f"gunicorn-search-{stamp}.log"
    proc = None
    try:
        proc = rh.start_gunicorn(log_path, port=PORT)
        rh.wait_until_up(proc, log_path, base=BASE)
        log("checking each query once")
        check(cases, token)
        single: dict[str, list[dict]] = {name: [] for name in cases}
        walk_once(cases, token, single, "before wrk")
        runs = drive(cases, token, args)
        walk_once(cases, token, single, "after wrk")
    finally:
        if proc is not None:
            rh.stop_gunicorn(proc)
    figures = summarise(runs)
    for name, walks in single.items():  # the verdict's latency: one client, no queue
        figures[name]["single_p50_ms"] = statistics.median(w["p50_ms"] for w in walks)
        figures[name]["single_p99_ms"] = statistics.median(w["p99_ms"] for w in walks)
    return {"runs": runs, "single": single, "figures": figures, "gunicorn_log": str(log_path)}


def walk_once(cases: dict, token: str, single: dict, when: str) -> None:
    """Each text by one connection, sequentially (the issue's latency names no
    concurrency: at 16 connections p50 is mostly the queue, see docs/BENCHMARKS.md)."""
    for name, case in cases.items():
        walk = rh.one_connection([path_of(case["q"])], token, base=BASE, most=200, budget=20)
        single[name].append(walk)
        log(f"one connection {when}, {name}: p50 {walk['p50_ms']:.1f} ms, "
            f"p99 {walk['p99_ms']:.1f} ms ({walk['n']} requests)")  # fmt: skip


# -- part 3: the ingestion cost (child process, its own database) ----------------------


def ingest_child(args) -> int:
    """Runs in its own process: Django bound to the ingestion database and lake."""
    lake = Path(args.lake or tempfile.mkdtemp(prefix="bench_search_ingest_"))
    url = f"postgres://postgres@127.0.0.1:5432/{INGEST_DB}"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "LAKE_ROOT": str(lake),
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("SEARCH_INDEX_ENABLED", None)  # the default: on
    os.environ.update(env)
    os.environ.pop("SEARCH_INDEX_ENABLED", None)
    # ingest_throughput's helpers, pointed at this database (its module is not edited).
    it.DB_NAME = INGEST_DB
    it.DSN = f"{it.PG} dbname={INGEST_DB}"
    it.sql.__defaults__ = (it.DSN,)
    out: dict = {"rows": args.ingest_rows, "days": args.ingest_days, "database": INGEST_DB}
    try:
        t0 = time.perf_counter()
        files = it.generate(lake, args.ingest_rows, args.ingest_days, args.seed)
        mb = sum(os.path.getsize(f["jsonl"]) for f in files) / 1e6
        log(f"generated {args.ingest_rows:,} rows in {len(files)} files ({mb:.0f} MB) "
            f"in {time.perf_counter() - t0:.0f} s")  # fmt: skip
        out["jsonl_mb"] = round(mb, 1)
        it.ensure_database(env)
        import django

        django.setup()
        from django.conf import settings

        from datalake.search import index as search_index

        assert settings.SEARCH_INDEX_ENABLED is True, "SEARCH_INDEX_ENABLED must default to on"
        it.install_timers()
        # The search hook's own time, inside the merge (merge.py calls it via the module).
        search_index.index_version = it.timed("search_index", search_index.index_version)
        rate_days = [it.FIRST_DAY + dt.timedelta(days=i) for i in range(-3, args.ingest_days + 1)]
        order: list[bool] = []
        for r in range(args.ingest_rounds):
            order += [True, False] if r % 2 == 0 else [False, True]
        passes = []
        for n, enabled in enumerate(order, 1):
            settings.SEARCH_INDEX_ENABLED = enabled
            reset_ingest(rate_days)
            log(f"pass {n}/{len(order)}: index {'ON' if enabled else 'OFF'}, {len(files)} files")
            result = it.bench_ingest(files)
            result["index_enabled"] = enabled
            result["search_entries"] = entries_check(files, enabled)
            if enabled:
                result["search_sample"] = sample_search(files)
            if not args.keep_file_details:
                result.pop("files", None)
            passes.append(result)
            log(
                f"pass {n} (index {'on' if enabled else 'off'}): {result['rows_per_s']:,} rows/s, "
                f"{result['seconds']:.1f} s; merge {result['phases_total'].get('merge', 0):.1f} s, "
                f"of which search hook {result['phases_total'].get('search_index', 0):.1f} s; "
                f"entries check {'PASS' if result['search_entries']['passed'] else 'FAIL'}"
            )
        settings.SEARCH_INDEX_ENABLED = True
        out["order"] = ["on" if e else "off" for e in order]
        out["passes"] = passes
        out.update(ingest_cost(passes))
    finally:
        shutil.rmtree(lake, ignore_errors=True)
    Path(args.out).write_text(json.dumps(out, indent=2, default=str))
    return 0


def reset_ingest(rate_days) -> None:
    """ingest_throughput.reset_state's steps (empty lake tables, runs, versions; current
    version 0; no stages; the rates), with CASCADE (tables added since reference the
    runs) and the search index and metric aggregates emptied too."""
    stages = it.sql(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
        "AND tablename LIKE 'ingest\\_stage\\_%'"
    )[0]
    wanted = (*it.TRUNCATE, "exchange_rates", "search_entries", *METRIC_TABLES)
    present = {
        t for (t,) in it.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")[0]
    }
    statements = [f'DROP TABLE IF EXISTS "{name}"' for (name,) in stages]
    statements += [
        "DROP TABLE IF EXISTS bench_copy_limit",
        f"TRUNCATE {', '.join(t for t in wanted if t in present)} RESTART IDENTITY CASCADE",
        "UPDATE datalake_resource SET current_version = 0",
    ]
    values = ", ".join(
        f"('{d.isoformat()}', '{c}', {r})"
        for d in rate_days
        for c, r in it.usd_gbp_rates(d).items()
    )
    statements.append(f"INSERT INTO exchange_rates (date, currency, rate) VALUES {values}")
    statements += ["VACUUM ANALYZE", "CHECKPOINT"]
    it.sql(statements)


def entries_check(files: list[dict], enabled: bool) -> dict:
    rows = sum(f["lines"] for f in files)
    total, current_raw, keys = it.sql(
        "SELECT count(*), count(*) FILTER (WHERE resource = 'transactions' AND valid_to IS NULL "
        "AND raw_source = 'transactions' AND raw_file IS NOT NULL AND raw_line IS NOT NULL), "
        "count(DISTINCT key) FROM search_entries"
    )[0][0]
    per_file = dict(it.sql("SELECT raw_file, count(*) FROM search_entries GROUP BY 1")[0])
    expected = {f"{f['day']}.jsonl": f["lines"] for f in files}
    if enabled:
        passed = total == rows and current_raw == rows and keys == rows and per_file == expected
    else:
        passed = total == 0
    return {
        "entries": total,
        "current_with_raw_file": current_raw,
        "distinct_keys": keys,
        "rows_ingested": rows,
        "per_file_matches": per_file == expected,
        "passed": passed,
    }


def sample_search(files: list[dict]) -> dict:
    """One ingested id is found in the table and in its file's line (sanity)."""
    from datalake.search import query

    with open(files[0]["jsonl"], "rb") as handle:
        first = json.loads(handle.readline())
    found, _ = query.search(
        first["transaction_id"], it.FIRST_DAY, ["transactions"], ["transactions"]
    )
    got = {r.resource: (r.matches, r.hits[0].raw_file, r.hits[0].raw_line) for r in found}
    return {
        "q": first["transaction_id"],
        "found": got,
        "passed": got.get("transactions", (0,))[0] == 1
        and got.get("raw_transactions", (0, None))[:2] == (1, f"{files[0]['day']}.jsonl"),
    }


def ingest_cost(passes: list[dict]) -> dict:
    on = [p for p in passes if p["index_enabled"]]
    off = [p for p in passes if not p["index_enabled"]]
    per_round = [1 - a["rows_per_s"] / b["rows_per_s"] for a, b in zip(on, off, strict=True)]
    merge_on = statistics.median(p["phases_total"].get("merge", 0) for p in on)
    merge_off = statistics.median(p["phases_total"].get("merge", 0) for p in off)
    return {
        "rows_per_s_on": statistics.median(p["rows_per_s"] for p in on),
        "rows_per_s_off": statistics.median(p["rows_per_s"] for p in off),
        "cost_per_round": per_round,
        "cost": statistics.median(per_round),
        "cost_of_medians": 1
        - statistics.median(p["rows_per_s"] for p in on)
        / statistics.median(p["rows_per_s"] for p in off),
        "search_hook_s": statistics.median(p["phases_total"].get("search_index", 0) for p in on),
        "merge_s_on": merge_on,
        "merge_s_off": merge_off,
        "merge_cost": 1 - merge_off / merge_on if merge_on else None,
        "entries_passed": all(p["search_entries"]["passed"] for p in passes)
        and all(p.get("search_sample", {}).get("passed", True) for p in on),
        "passed": statistics.median(per_round) <= COST_TARGET,
    }


def ingest_part(args, stamp: str) -> dict:
    out = RESULTS / f".search_http-ingest-{stamp}.json"
    command = [
        sys.executable, str(Path(__file__).resolve()), "--ingest-child", "--out", str(out),
        "--ingest-rows", str(args.ingest_rows), "--ingest-days", str(args.ingest_days),
        "--ingest-rounds", str(args.ingest_rounds), "--seed", str(args.seed),
    ]  # fmt: skip
    log(f"ingestion cost: {args.ingest_rows:,} rows in {args.ingest_days} files, "
        f"{args.ingest_rounds} round(s) of on/off, database {INGEST_DB}")  # fmt: skip
    done = subprocess.run(command, cwd=ROOT)
    if done.returncode or not out.exists():
        return {"error": f"ingestion child exited {done.returncode}", "passed": False}
    result = json.loads(out.read_text())
    out.unlink()
    return result


# -- the report ------------------------------------------------------------------------


def verdicts(cases: dict, figures: dict) -> dict[str, dict[str, bool]]:
    checks = {}
    for name, case in cases.items():
        if not case["target"] or name not in figures:
            continue
        f = figures[name]
        checks[name] = {
            f"p50 < {P50_TARGET_MS:.0f} ms": f["single_p50_ms"] < P50_TARGET_MS,
            f"p99 < {P99_TARGET_MS:.0f} ms": f["single_p99_ms"] < P99_TARGET_MS,
            "no errors": f["errors"] == 0 and f["requests"] > 0,
        }
    return checks


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def markdown(report: dict) -> str:
    lines = [f"Command: `{report['command']}`", ""]
    m = report["machine"]
    lines.append(
        f"Machine: {m.get('nproc')} cores, {m.get('memory')}, {m.get('cpu')}, PostgreSQL "
        f"{m.get('postgresql')}, Python {m.get('python')}, {m.get('wrk')}, commit "
        f"{m.get('commit')}; load before {tuple(round(x, 2) for x in m.get('loadavg_before', ()))}"
    )
    lines.append("")
    s = report.get("sizes") or {}
    if s:
        lines += [
            f"Data: {s['transactions']:,} current transactions; {s['search_entries']:,} "
            f"search entries. `transactions` {gib(s['transactions_total_bytes'])} total "
            f"(heap {gib(s['transactions_heap_bytes'])}); `search_entries` "
            f"{gib(s['search_entries_total_bytes'])} total (heap "
            f"{gib(s['search_entries_heap_bytes'])}, GIN `search_doc` "
            f"{gib(s['search_doc_bytes'])}, `search_key` {gib(s['search_key_bytes'])}, "
            f"`search_current_at` {gib(s['search_current_at_bytes'])}, `search_raw_at` "
            f"{gib(s['search_raw_at_bytes'])}).",
            "",
        ]
    http = report.get("http")
    if http:
        lines += [
            f"Search over HTTP: gunicorn {rh.WORKERS} sync workers, wrk {report['connections']} "
            f"connections, {report['rounds']} round(s) of {report['duration_s']} s "
            f"(+{report['warmup_s']} s warm-up), medians; "
            f"`GET /api/v1/search/?q=...&since={SINCE}`",
            "",
            "| query | q | share of rows | plan | answer | 1 conn. p50 ms | 1 conn. p99 ms | "
            "wrk req/s | wrk p50 ms | wrk p99 ms | in-process view ms | targets (1 conn.) |",
            "| --- | --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for name, case in report["cases"].items():
            f = http["figures"][name]
            view_ms = case.get("inprocess_ms", {}).get("view_total_median", 0)
            checks = report["targets"].get(name, {})
            verdict = "; ".join(f"{k}: {'PASS' if ok else 'FAIL'}" for k, ok in checks.items())
            answer = ", ".join(
                f"{r} {v['matches']}{'+' if v['capped'] else ''}"
                for r, v in case.get("answer", {}).get("resources", {}).items()
            )
            lines.append(
                f"| {case['label']} | `{case['q']}` | {case.get('share', 0):.2%} | "
                f"{case.get('plan', '?')} | {answer} | {f['single_p50_ms']:.1f} | "
                f"{f['single_p99_ms']:.1f} | {f['rps']:,.0f} | {f['p50_ms']:.1f} | "
                f"{f['p99_ms']:.1f} | {view_ms:.1f} | {verdict or 'information'} |"
            )
        lines.append("")
    lines += ["| measure | value | target | result |", "| --- | --- | --- | --- |"]
    b = report.get("build") or {}
    if b.get("measured"):
        lines.append(
            f"| index build: `manage.py rebuild_search_index`, {b.get('entries_indexed') or 0:,} "
            f"entries from an empty index | {b['wall_s']:.1f} s wall ({b.get('command_s')} s "
            f"by the command, ANALYZE included) | - | - |"
        )
        lines.append(
            f"| then VACUUM (ANALYZE) search_entries | {b['vacuum_analyze_s']:.1f} s | - | - |"
        )
    elif b:
        lines.append("| index build | not measured (--skip-build) | - | - |")
    ing = report.get("ingest") or {}
    if "cost" in ing:
        rounds = ", ".join(f"{c:.1%}" for c in ing["cost_per_round"])
        lines += [
            f"| ingestion, real path, index ON ({ing['rows']:,} rows, {ing['days']} files) | "
            f"{ing['rows_per_s_on']:,.0f} rows/s | - | - |",
            f"| ingestion, real path, index OFF | {ing['rows_per_s_off']:,.0f} rows/s | - | - |",
            f"| cost of the index: 1 - on/off (per round: "
            f"{rounds}; order {', '.join(ing['order'])})"
            f" | {ing['cost']:.1%} | <= 30% | {'PASS' if ing['passed'] else 'FAIL'} |",
            f"| (info) merge phase on / off; search hook inside it | {ing['merge_s_on']:.1f} s / "
            f"{ing['merge_s_off']:.1f} s; hook {ing['search_hook_s']:.1f} s | - | - |",
            f"| one current entry per ingested row, with raw_file, per file; sample id found in "
            f"table and file | {'yes' if ing['entries_passed'] else 'NO'} | all | "
            f"{'PASS' if ing['entries_passed'] else 'FAIL'} |",
        ]
    elif ing:
        lines.append(f"| ingestion cost | {ing.get('error')} | <= 30% | FAIL |")
    lines += ["", ("ALL TARGETS PASS" if report["passed"] else "SOME TARGETS FAIL")]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--database", default=DB_NAME)
    parser.add_argument("--duration", type=int, default=20, help="seconds of each timed run")
    parser.add_argument("--warmup", type=int, default=5, help="seconds of warm-up per query")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--profile-runs", type=int, default=15, help="in-process view calls")
    parser.add_argument("--ingest-rows", type=int, default=1_000_000)
    parser.add_argument("--ingest-days", type=int, default=10)
    parser.add_argument("--ingest-rounds", type=int, default=2, help="pairs of on/off passes")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--skip-build", action="store_true", help="reuse the index there")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for other benches")
    parser.add_argument("--ingest-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--lake", help=argparse.SUPPRESS)
    parser.add_argument("--keep-file-details", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ingest_child:
        return ingest_child(args)
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get update && apt-get install -y wrk")
    signal.signal(signal.SIGTERM, rh._raise_exit)
    RESULTS.mkdir(exist_ok=True)
    if not args.no_wait:
        wait_for_quiet()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    # The search database's lake: a landing folder `transactions`, so that migrate
    # registers `raw_transactions` (granted, searched; it holds no entries here).
    lake = Path(tempfile.mkdtemp(prefix="bench_search_lake_"))
    (lake / "landing" / "transactions").mkdir(parents=True)
    os.environ["LAKE_ROOT"] = str(lake)
    os.environ.pop("SEARCH_INDEX_ENABLED", None)
    rh.configure(args.database)
    cases = scenarios(args.rows)
    report: dict = {
        "benchmark": "search_http",
        "started": stamp,
        "command": "python bench/legacy/search_http.py " + " ".join(argv or sys.argv[1:]),
        "rows": args.rows,
        "database": args.database,
        "since": SINCE,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "rounds": args.rounds,
        "connections": args.connections,
        "wrk_threads": rh.WRK_THREADS,
        "gunicorn_workers": rh.WORKERS,
    }
    try:
        report["build"] = prepare(args)
        report["sizes"] = sizes()
        report["machine"] = rh.machine()
        log("shares of the rows matched by each text")
        shares(cases)
        report["cases"] = cases
        if not args.skip_http:
            report["http"] = http_part(cases, args, stamp)
            report["targets"] = verdicts(cases, report["http"]["figures"])
        if not args.skip_ingest:
            report["ingest"] = ingest_part(args, stamp)
    finally:
        shutil.rmtree(lake, ignore_errors=True)
    report.setdefault("targets", {})
    report["loadavg_after"] = os.getloadavg()
    ing = report.get("ingest")
    report["passed"] = (
        all(ok for c in report["targets"].values() for ok in c.values())
        and (ing is None or (ing.get("passed", False) and ing.get("entries_passed", False)))
        and not (args.skip_http or args.skip_build)
    )
    out = RESULTS / f"search_http-{stamp}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print()
    print(markdown(report))
    print(f"\ndetails in {out.relative_to(ROOT)}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
