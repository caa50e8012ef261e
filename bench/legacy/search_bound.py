"""Search bound (issue 24, item 2): broad searches on 1,000,000 rows, the worker's memory.

    nice -n 10 .venv/bin/python bench/legacy/search_bound.py [--rows 1000000] [--repeat 10]

Run from the repository root. Its own database `datalake_bench_search_bound` (created
and migrated if missing), the transactions loaded with bench/load_transactions.py
(skipped when there), `search_entries` emptied and rebuilt with `manage.py
rebuild_search_index` (timed), autovacuum off on `search_entries` for the run (the
statistics are what each phase says, not what autovacuum did meanwhile).

Then gunicorn (ONE sync worker, bench.settings, so every request is served by the
process measured) on 127.0.0.1:8768, a token of the `bench` user holding `read` on
`transactions`, and the broad texts over HTTP, each `--repeat` times, in three phases:

1. no statistics (pg_statistic of `search_entries` deleted): every text takes the
   bitmap plan, the one that read every match into the worker before the fix (a
   country: ~150,000 entries);
2. after `ANALYZE search_entries`: frequent words take the walk plan;
3. a second server with `API_STATEMENT_TIMEOUT_MS=--tight-ms`: a statement past it is
   cancelled and answered 503 `query_timeout`;
4. with `--compare-commit <commit>`: that commit's code (before the fix) served the
   same way, each text once, without statistics.

For each text: the HTTP status and code, the matches per resource, the median latency,
and the worker's RSS (VmRSS) and peak RSS (VmHWM, from /proc) after it. The worker's
RSS is also read after a warm-up request (an id), so the growth the broad texts cause
is `peak - warm`. Writes bench/results/search_bound-<timestamp>.json and prints a
markdown table. gunicorn is stopped at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parents[1]
RESULTS = ROOT / "bench" / "results"
for _path in (str(ROOT), str(BENCH)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import psycopg  # noqa: E402
import rows_http as rh  # noqa: E402

DB_NAME = os.environ.get("BENCH_DATABASE", "datalake_bench") + "_search_bound"  # run.py --database
PORT, TIGHT_PORT, OLD_PORT = 8768, 8769, 8770  # not rows_http's 8765/6, search_http's 8767
SINCE = "2026-01-01"

# (text, what it is). Ids are `TX-` and 8 digits (lexemes `tx` and `-00000001`), users
# `U` and 6 digits, products `P` and 5 digits (load_transactions).
TEXTS = [
    ("TX-00500001", "one id (the warm-up's kind)"),
    ("TX-000", "prefix of every id (1,000,000)"),
    ("TX-0001", "prefix of 10,000 ids"),
    ("TX-000012", "prefix of 100 ids"),
    ("U000", "prefix of 1,000 users' ids (~5,000 rows)"),
    ("P000", "prefix of 100 products (~14% of the rows)"),
    ("FR", "a country (15% of the rows)"),
    ("completed", "a status (80% of the rows)"),
    ("France completed card", "three frequent words (AND)"),
]


def log(message: str) -> None:
    print(f"[bound {time.strftime('%H:%M:%S')}] {message}", flush=True)


def q1(statement: str, params=None, url: str | None = None):
    with psycopg.connect(url or rh.DB_URL, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def prepare(rows: int, reuse: bool) -> dict:
    rh.prepare_database(rows)  # create, migrate, load (skipped when already loaded)
    q1("ALTER TABLE search_entries SET (autovacuum_enabled = false)")
    entries = q1("SELECT count(*) FROM search_entries")[0][0]
    if reuse and entries == rows:
        log(f"reusing the index of {entries:,} entries (--reuse-index)")
        return {"build_s": None, "entries": entries, "reused": True}
    q1("TRUNCATE search_entries")
    log(f"rebuilding the search index over {rows:,} rows")
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "manage.py", "rebuild_search_index"],
        cwd=ROOT, env=rh.ENV, capture_output=True, text=True, check=True,
    )  # fmt: skip
    build_s = time.perf_counter() - t0
    log(f"index built in {build_s:.0f} s: {done.stdout.strip()}")
    q1("VACUUM search_entries")  # visibility map; the statistics are each phase's business
    entries = q1("SELECT count(*) FROM search_entries")[0][0]
    size = q1("SELECT pg_total_relation_size('search_entries')")[0][0]
    return {"build_s": round(build_s, 1), "entries": entries, "search_entries_bytes": size}


def worker_pid(master: int) -> int:
    for _ in range(50):
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.2)
    sys.exit("no gunicorn worker found")


def memory(pid: int) -> dict:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) // 1024  # MiB
    return {"rss_mib": fields["VmRSS"], "peak_mib": fields["VmHWM"]}


def call(text: str, token: str, base: str) -> tuple[int, dict | None, float]:
    path = "/api/v1/search/?" + urllib.parse.urlencode({"q": text, "since": SINCE})
    request = urllib.request.Request(base + path, headers={"Authorization": f"Token {token}"})
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            status, body = response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        status, body = error.code, json.loads(error.read() or b"null")
    return status, body, (time.perf_counter() - t0) * 1000


def summary(status: int, body: dict | None) -> dict:
    if status != 200:
        return {"status": status, "code": (body or {}).get("code"),
                "detail": (body or {}).get("detail")}  # fmt: skip
    return {
        "status": 200,
        "total": body["total"],
        "resources": {
            r["resource"]: {
                "matches": r["matches"],
                "capped": r["matches_capped"],
                "results": len(r["results"]),
            }
            for r in body["resources"]
        },
    }


def phase(name: str, token: str, base: str, pid: int, repeat: int) -> list[dict]:
    out = []
    for text, what in TEXTS:
        times, answer = [], None
        for _ in range(repeat):
            status, body, ms = call(text, token, base)
            times.append(ms)
            answer = summary(status, body)
        row = {"phase": name, "q": text, "what": what, **answer,
               "median_ms": round(statistics.median(times), 1), **memory(pid)}  # fmt: skip
        out.append(row)
        log(f"{name}: {text!r}: {answer.get('status')} {answer.get('code') or ''} "
            f"total={answer.get('total')} median {row['median_ms']} ms, "
            f"worker RSS {row['rss_mib']} MiB, peak {row['peak_mib']} MiB")  # fmt: skip
    return out


def serve(port: int, log_path: Path, extra_env: dict) -> tuple:
    rh.ENV.update(extra_env)
    proc = rh.start_gunicorn(log_path, port=port)
    base = f"http://{rh.HOST}:{port}"
    rh.wait_until_up(proc, log_path, base=base)
    return proc, base


def compare(commit: str, token: str, log_path: Path) -> list[dict]:
    """The texts once each on the code of `commit` (`git archive` into a temporary
    folder, served the same way), without statistics: the worker before the fix."""
    folder = Path(tempfile.mkdtemp(prefix="search_bound_"))
    subprocess.run(f"git -C {ROOT} archive {commit} | tar -x -C {folder}", shell=True, check=True)
    saved = rh.ROOT, rh.ENV.get("PYTHONPATH")
    rh.ROOT, rh.ENV["PYTHONPATH"] = folder, str(folder)
    proc = None
    try:
        proc, base = serve(OLD_PORT, log_path, {})
        q1("DELETE FROM pg_statistic WHERE starelid = 'search_entries'::regclass")
        pid = worker_pid(proc.pid)
        call("TX-00000001", token, base)
        log(f"commit {commit}: worker {pid} {memory(pid)} after one search")
        return phase(f"commit {commit} (before the fix), no statistics", token, base, pid, 1)
    finally:
        if proc is not None:
            rh.stop_gunicorn(proc)
        rh.ROOT, rh.ENV["PYTHONPATH"] = saved
        shutil.rmtree(folder, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--tight-ms", type=int, default=50)
    parser.add_argument("--reuse-index", action="store_true", help="keep a complete index")
    parser.add_argument("--compare-commit", help="also serve this commit's code, no statistics")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, rh._raise_exit)  # so that `finally` stops gunicorn
    rh.configure(DB_NAME)
    rh.WORKERS = 1
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_path = RESULTS / f"gunicorn-search_bound-{stamp}.log"
    t0 = time.perf_counter()
    result: dict = {
        "rows": args.rows,
        "index": prepare(args.rows, args.reuse_index),
        "machine": rh.machine(),
    }
    result["load_and_index_s"] = round(time.perf_counter() - t0, 1)
    rh.django_setup()
    token = rh.bench_token(("transactions",))
    runs, procs = [], []
    # Before the server starts: its worker caches the statistics it reads for 60 s.
    q1("DELETE FROM pg_statistic WHERE starelid = 'search_entries'::regclass")
    try:
        proc, base = serve(PORT, log_path, {"API_STATEMENT_TIMEOUT_MS": "5000"})
        procs.append(proc)
        pid = worker_pid(proc.pid)
        result["worker_started"] = memory(pid)
        call("TX-00000001", token, base)
        result["worker_warm"] = memory(pid)
        log(f"worker {pid}: {result['worker_warm']} after one search")
        runs += phase("no statistics (bitmap plan)", token, base, pid, args.repeat)
        q1("ANALYZE search_entries")
        time.sleep(61)  # query.py caches the statistics for 60 s
        runs += phase("after ANALYZE", token, base, pid, args.repeat)
        result["worker_end"] = memory(pid)
        tight, tight_base = serve(
            TIGHT_PORT, log_path, {"API_STATEMENT_TIMEOUT_MS": str(args.tight_ms)}
        )
        procs.append(tight)
        q1("DELETE FROM pg_statistic WHERE starelid = 'search_entries'::regclass")
        tight_pid = worker_pid(tight.pid)
        runs += phase(f"timeout {args.tight_ms} ms, no statistics", token, tight_base,
                      tight_pid, 1)  # fmt: skip
        for proc in procs:
            rh.stop_gunicorn(proc)
        if args.compare_commit:
            runs += compare(args.compare_commit, token, log_path)
    finally:
        for proc in procs:
            rh.stop_gunicorn(proc)
        q1("ALTER TABLE search_entries RESET (autovacuum_enabled)")
        q1("ANALYZE search_entries")
    result["runs"] = runs
    out = RESULTS / f"search_bound-{stamp}.json"
    out.write_text(json.dumps(result, indent=2, default=str))
    print("\n| phase | q | answer | median ms | worker RSS / peak MiB |\n|---|---|---|---|---|")
    for r in runs:
        answer = (f"{r['status']} {r.get('code')}" if r["status"] != 200 else
                  f"200, total {r['total']}, " + ", ".join(
                      f"{k}: {v['matches']}{'+' if v['capped'] else ''} ({v['results']} rows)"
                      for k, v in r["resources"].items()))  # fmt: skip
        print(f"| {r['phase']} | `{r['q']}` | {answer} | {r['median_ms']} | "
              f"{r['rss_mib']} / {r['peak_mib']} |")  # fmt: skip
    log(f"worker: started {result['worker_started']}, warm {result['worker_warm']}, "
        f"end {result['worker_end']}; results in {out}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
