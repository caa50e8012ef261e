"""The Django-side parts of `bench/run.py search`: set-up jobs of the harness
(bench/harness/child.py loads this file by path and runs a function in the measured
tree's interpreter, Django set up with benchsite.settings on the database given).
Imports nothing from `bench` as a package: the ingestion helpers are loaded by path.

- `profile`: per text, the plan datalake/search/query.py picks, the view's time in one
  process split by SQL statement (Django test client), EXPLAIN (ANALYZE, BUFFERS) of
  the search statements the view ran;
- `ingest_cost`: the index's cost to ingestion: `rows` transactions in `days` daily
  JSON-lines files, ingested through the real path from empty tables, with the index
  on and off (SEARCH_INDEX_ENABLED flipped in-process), the order alternating by round.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import statistics
import sys
import time
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
SINCE = "2026-01-01"
METRIC_TABLES = ("metrics_product_day", "metrics_user_type_day", "metrics_minute")


def log(message: str) -> None:
    print(f"[search {time.strftime('%H:%M:%S')}] {message}", flush=True)


def path_of(q: str) -> str:
    return "/api/v1/search/?" + urllib.parse.urlencode({"q": q, "since": SINCE})


# -- the in-process profile -------------------------------------------------------------


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


def profile(cases: dict, token: str, runs: int) -> dict:
    """Per text: the plan chosen, the view's time in-process by statement, EXPLAIN ANALYZE.
    name -> the fields to add to its case."""
    from django.db import connection, transaction
    from django.test import Client

    from datalake.search import query

    client = Client()
    freq, _floor = query._frequencies()
    out = {}
    for name, case in cases.items():
        words = query.lexemes(case["q"])
        got = out[name] = {
            "lexemes": words,
            "pg_stats_freq": {w: freq.get(w) for w in words},
            "plan": "walk (frequent)" if query.is_frequent(words) else "bitmap (rare)",
        }
        totals, by_label, last = [], [], None
        for _ in range(runs):
            capture = Capture()
            with connection.execute_wrapper(capture):
                t0 = time.perf_counter()
                response = client.get(path_of(case["q"]), HTTP_AUTHORIZATION=f"Token {token}")
                totals.append((time.perf_counter() - t0) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"{case['q']}: answered {response.status_code}")
            sums: dict[str, float] = {}
            for sql, _params, ms in capture.calls:
                sums[label_of(sql)] = sums.get(label_of(sql), 0.0) + ms
            sums["python (outside SQL)"] = totals[-1] - sum(ms for *_, ms in capture.calls)
            by_label.append(sums)
            last = capture.calls
        labels = sorted({k for s in by_label for k in s})
        got["inprocess_ms"] = {
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
        got["explain"] = plans
    return out


# -- the ingestion cost -----------------------------------------------------------------


def ingest_helpers():
    """The ingest benchmark's helpers (bench/scenarios/ingest_job.py: generate,
    bench_ingest, install_timers, sql, TRUNCATE, usd_gbp_rates, FIRST_DAY), loaded by
    path and pointed at DATABASE_URL (the search benchmark's ingestion database)."""
    path = HERE / "ingest_job.py"
    if not path.exists():
        raise SystemExit(f"no {path}: the ingest benchmark's helpers")
    spec = importlib.util.spec_from_file_location("bench_search_ingest_helpers", path)
    it = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = it  # its generator's pool pickles its functions by name
    spec.loader.exec_module(it)
    it.DSN = os.environ["DATABASE_URL"]
    it.sql.__defaults__ = (it.DSN,)
    return it


def reset_ingest(it, rate_days) -> None:
    """The ingest benchmark's reset (empty lake tables, runs, versions; current version 0;
    no stages; the rates), with CASCADE and the search index and metric aggregates
    emptied too."""
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


def entries_check(it, files: list[dict], enabled: bool) -> dict:
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


def sample_search(it, files: list[dict]) -> dict:
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


def ingest_cost(rows: int, days: int, rounds: int, seed: int, keep_file_details: bool) -> dict:
    """The passes, on/off alternating; the cost 1 - rows/s(on) / rows/s(off) per round."""
    from django.conf import settings

    it = ingest_helpers()
    lake = Path(settings.LAKE_ROOT)
    out: dict = {"rows": rows, "days": days}
    t0 = time.perf_counter()
    files = it.generate(lake, rows, days, seed)
    mb = sum(os.path.getsize(f["jsonl"]) for f in files) / 1e6
    log(f"generated {rows:,} rows in {len(files)} files ({mb:.0f} MB) "
        f"in {time.perf_counter() - t0:.0f} s")  # fmt: skip
    out["jsonl_mb"] = round(mb, 1)
    if settings.SEARCH_INDEX_ENABLED is not True:
        raise SystemExit("SEARCH_INDEX_ENABLED must default to on")
    it.install_timers()  # the merge's phases, the search hook's own time among them
    rate_days = [it.FIRST_DAY + dt.timedelta(days=i) for i in range(-3, days + 1)]
    order: list[bool] = []
    for r in range(rounds):
        order += [True, False] if r % 2 == 0 else [False, True]
    passes = []
    for n, enabled in enumerate(order, 1):
        settings.SEARCH_INDEX_ENABLED = enabled
        reset_ingest(it, rate_days)
        log(f"pass {n}/{len(order)}: index {'ON' if enabled else 'OFF'}, {len(files)} files")
        result = it.bench_ingest(files)
        result["index_enabled"] = enabled
        result["search_entries"] = entries_check(it, files, enabled)
        if enabled:
            result["search_sample"] = sample_search(it, files)
        if not keep_file_details:
            result.pop("files", None)
        passes.append(result)
    settings.SEARCH_INDEX_ENABLED = True
    out["order"] = ["on" if e else "off" for e in order]
    out["passes"] = passes
    on = [p for p in passes if p["index_enabled"]]
    off = [p for p in passes if not p["index_enabled"]]
    per_round = [1 - a["rows_per_s"] / b["rows_per_s"] for a, b in zip(on, off, strict=True)]
    merge_on = statistics.median(p["phases_total"].get("merge", 0) for p in on)
    merge_off = statistics.median(p["phases_total"].get("merge", 0) for p in off)
    out.update(
        rows_per_s_on=statistics.median(p["rows_per_s"] for p in on),
        rows_per_s_off=statistics.median(p["rows_per_s"] for p in off),
        cost_per_round=per_round,
        cost=statistics.median(per_round),
        search_hook_s=statistics.median(p["phases_total"].get("search_index", 0) for p in on),
        merge_s_on=merge_on,
        merge_s_off=merge_off,
        merge_cost=1 - merge_off / merge_on if merge_on else None,
        entries_passed=all(p["search_entries"]["passed"] for p in passes)
        and all(p.get("search_sample", {}).get("passed", True) for p in on),
    )
    return out
