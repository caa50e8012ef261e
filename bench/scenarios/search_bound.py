"""One search never reads the index into the worker (issue 24, item 2).

Its own database `<--database>_search_bound` (`datalake_bench_search_bound`): `--rows`
transactions (1,000,000 by default; bench/load_transactions.py, skipped when there),
`search_entries` emptied and rebuilt with `manage.py rebuild_search_index` (timed;
`--reuse-index` keeps a complete one), autovacuum off on `search_entries` for the run
(the statistics are what each phase says). Then gunicorn with ONE sync worker (every
request served by the process measured), a token of the `bench` user holding `read` on
`transactions`, and broad texts `GET /api/v1/search/?q=...&since=2026-01-01`, each
`--repeat` times, in phases:

    no_stats   pg_statistic of `search_entries` deleted: every text takes the bitmap
               plan, the one that read every match into the worker before the fix
    analyzed   after `ANALYZE search_entries` (and the 60 s statistics cache): frequent
               words take the walk plan
    tight      a second server with API_STATEMENT_TIMEOUT_MS=--tight-ms, no statistics:
               a statement past it is cancelled and answered 503 `query_timeout`
    old        with `--compare-commit REF`: that ref's code (a `git worktree`, the
               harness's), served the same way, each text once, no statistics

For each text: status and code, matches per resource, median latency, and the worker's
RSS and peak RSS (VmRSS, VmHWM from /proc) after it; the worker's RSS after a warm-up
request (an id), so the growth the broad texts cause is `peak - warm`.
Targets: every broad text refused (400 `query_too_broad`) or bounded (200, at most 10
rows shown, matches capped), the worker's peak within 50 MiB of its warm RSS, and past
the tight statement limit 503 `query_timeout` (no other error in any phase). Its own
options: `--search-bound-args "--repeat 10 --tight-ms 50 --reuse-index
--compare-commit bc601a6"`.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import time
import urllib.parse
from pathlib import Path

from bench.harness import db, drivers, machine, report
from bench.harness.report import Target
from bench.harness.scenario import Measure, Side
from bench.harness.server import Server
from bench.harness.tree import Tree

NAME = "search_bound"
DESCRIPTION = "one search never reads the index into the worker (issue 24.2)"
SERVERS = {"main": "benchsite.settings", "tight": "benchsite.settings"}
SCENARIOS = [  # each text `--repeat` times on one worker (tight: once)
    Measure("no_stats", "no statistics (bitmap plan)"),
    Measure("analyzed", "after ANALYZE (walk plan for frequent words)"),
    Measure("tight", "statement limit --tight-ms, no statistics (server `tight`)"),
]
TARGETS = [
    *(
        t
        for p in ("no_stats", "analyzed")
        for t in (
            Target(f"({p}) broad texts refused or bounded", p, "unbounded", "<", 1),
            Target(f"({p}) worker peak RSS - warm RSS < 50 MiB", p, "growth_mib", "<", 50),
        )
    ),
    Target("(tight) past the statement limit: 503 query_timeout", "tight", "timeouts", ">=", 1),
]
DEFAULTS = {"rows": 1_000_000}
SINCE = "2026-01-01"
STATS_CACHE_S = 61  # datalake/search/query.py caches the statistics for 60 s
# (text, what it is). Ids are `TX-` and 8 digits, users `U` and 6, products `P` and 5.
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


def own_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="--search-bound-args", add_help=False)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--tight-ms", type=int, default=50)
    parser.add_argument("--reuse-index", action="store_true", help="keep a complete index")
    parser.add_argument("--compare-commit", help="also serve this ref's code, no statistics")
    return parser


def add_arguments(group) -> None:
    group.add_argument(
        "--search-bound-args", default="", metavar="ARGS",
        help="its own options: --repeat N (10), --tight-ms N (50), --reuse-index, "
        "--compare-commit REF (that ref's code too, before the fix)",
    )  # fmt: skip


def no_statistics(url: str) -> None:
    db.sql(url, "DELETE FROM pg_statistic WHERE starelid = 'search_entries'::regclass")


def prepare(side: Side, args, own) -> dict:
    db.prepare(side.tree, side.database, args.rows)
    url = side.db_url
    db.sql(url, "ALTER TABLE search_entries SET (autovacuum_enabled = false)")
    entries = db.sql(url, "SELECT count(*) FROM search_entries")[0][0]
    if own.reuse_index and entries == args.rows:
        drivers.log(f"reusing the index of {entries:,} entries (--reuse-index)")
        return {"build_s": None, "entries": entries, "reused": True}
    db.sql(url, "TRUNCATE search_entries")
    drivers.log(f"rebuilding the search index over {args.rows:,} rows")
    t0 = time.perf_counter()
    said = side.tree.manage(url, "rebuild_search_index", capture=True)
    build_s = time.perf_counter() - t0
    drivers.log(f"index built in {build_s:.0f} s: {said.strip()}")
    db.sql(url, "VACUUM search_entries")  # visibility map; statistics are each phase's
    return {
        "build_s": round(build_s, 1),
        "entries": db.sql(url, "SELECT count(*) FROM search_entries")[0][0],
        "search_entries_bytes": db.sql(url, "SELECT pg_total_relation_size('search_entries')")[0][
            0
        ],
    }


def worker_pid(server: Server) -> int:
    master = server.proc.pid
    for _ in range(50):
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.2)
    raise SystemExit(f"no gunicorn worker of {server}")


def memory(pid: int) -> dict:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) // 1024  # MiB
    return {"rss_mib": fields["VmRSS"], "peak_mib": fields["VmHWM"]}


def path_of(text: str) -> str:
    return "/api/v1/search/?" + urllib.parse.urlencode({"q": text, "since": SINCE})


def call(base: str, text: str, token: str) -> tuple[int, dict | None, float]:
    t0 = time.perf_counter()
    status, body = drivers.get(base, path_of(text), token, timeout=120, error_body=True)
    return status, body, (time.perf_counter() - t0) * 1000


def answer_of(status: int, body: dict | None) -> dict:
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


def bounded(answer: dict) -> bool:
    """Refused as too broad, or at most 10 rows shown and the count capped."""
    if answer["status"] != 200:
        return answer["status"] == 400 and answer.get("code") == "query_too_broad"
    return all(
        r["results"] <= 10 and (r["capped"] or r["matches"] <= 1000)
        for r in answer["resources"].values()
    )


def expected(answer: dict) -> bool:
    """What a phase may answer: 200, 400 query_too_broad, 503 query_timeout."""
    code = (answer["status"], answer.get("code"))
    return answer["status"] == 200 or code in (
        (400, "query_too_broad"),
        (503, "query_timeout"),
    )


def phase(name: str, base: str, token: str, pid: int, repeat: int) -> list[dict]:
    out = []
    for text, what in TEXTS:
        times, answer = [], None
        for _ in range(repeat):
            status, body, ms = call(base, text, token)
            times.append(ms)
            answer = answer_of(status, body)
        row = {"phase": name, "q": text, "what": what, **answer,
               "median_ms": round(statistics.median(times), 1), **memory(pid)}  # fmt: skip
        out.append(row)
        drivers.log(
            f"{name}: {text!r}: {answer['status']} {answer.get('code') or ''} "
            f"total={answer.get('total')} median {row['median_ms']} ms, "
            f"worker RSS {row['rss_mib']} MiB, peak {row['peak_mib']} MiB"
        )
    return out


def figures_of(rows: list[dict], warm: dict) -> dict:
    broad = [r for r in rows if r["q"] != TEXTS[0][0]]
    return {
        "texts": len(rows),
        "unbounded": sum(not bounded(r) for r in broad if r["status"] != 503),
        "timeouts": sum(r["status"] == 503 for r in rows),
        "growth_mib": max(r["peak_mib"] for r in rows) - warm["rss_mib"],
        "peak_mib": max(r["peak_mib"] for r in rows),
        "errors": sum(not expected(r) for r in rows),
    }


def compare(side: Side, ref: str, token: str) -> list[dict]:
    """The texts once each on `ref`'s code (a `git worktree`), one worker, no statistics."""
    tree = Tree.worktree(ref, "old")
    server = Server(tree, side.db_url, "old", workers=1)
    try:
        server.start()
        no_statistics(side.db_url)
        pid = worker_pid(server)
        call(server.base, TEXTS[0][0], token)
        drivers.log(f"{ref}: worker {pid} {memory(pid)} after one search")
        return phase(f"old ({ref}), no statistics", server.base, token, pid, 1)
    finally:
        server.stop()
        tree.close()


def run(side: Side, args) -> bool:
    own = own_parser().parse_args(shlex.split(args.search_bound_args or ""))
    side.database = f"{args.database}_search_bound"
    drivers.OWN_DATABASES.add(side.database)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    t0 = time.perf_counter()
    result: dict = {"rows": args.rows, "index": prepare(side, args, own)}
    result["load_and_index_s"] = round(time.perf_counter() - t0, 1)
    info = machine.facts(side.db_url, side.tree)
    token = side.job(
        "token", username="bench", grants=[{"resource": "transactions", "privilege": "read"}]
    )["token"]
    url = side.db_url
    runs: list[dict] = []
    figures: dict[str, dict] = {}
    # Before the server starts: its worker caches the statistics it reads for 60 s.
    no_statistics(url)
    try:
        side.start(SERVERS, ["main"], workers=1, env={"API_STATEMENT_TIMEOUT_MS": "5000"})
        main = side.servers["main"]
        pid = worker_pid(main)
        result["worker_started"] = memory(pid)
        call(main.base, TEXTS[0][0], token)
        warm = result["worker_warm"] = memory(pid)
        drivers.log(f"worker {pid}: {warm} after one search")
        rows = phase("no_stats", main.base, token, pid, own.repeat)
        figures["no_stats"] = figures_of(rows, warm)
        runs += rows
        db.sql(url, "ANALYZE search_entries")
        drivers.log(f"ANALYZE search_entries; waiting {STATS_CACHE_S} s (the statistics cache)")
        time.sleep(STATS_CACHE_S)
        rows = phase("analyzed", main.base, token, pid, own.repeat)
        figures["analyzed"] = figures_of(rows, warm)
        runs += rows
        result["worker_end"] = memory(pid)
        side.start(
            SERVERS, ["tight"], workers=1, env={"API_STATEMENT_TIMEOUT_MS": str(own.tight_ms)}
        )
        no_statistics(url)
        tight = side.servers["tight"]
        tight_pid = worker_pid(tight)
        rows = phase("tight", tight.base, token, tight_pid, 1)
        figures["tight"] = figures_of(rows, memory(tight_pid))
        runs += rows
        side.stop()
        if own.compare_commit:
            runs += compare(side, own.compare_commit, token)
    finally:
        side.stop()
        db.sql(url, "ALTER TABLE search_entries RESET (autovacuum_enabled)")
        db.sql(url, "ANALYZE search_entries")
    checks = report.check_all(TARGETS, figures)
    passed = bool(checks) and all(c["passed"] for c in checks)

    def shown(r: dict) -> str:
        if r["status"] != 200:
            return f"{r['status']} `{r.get('code')}`"
        return f"200, total {r['total']}, " + ", ".join(
            f"{k}: {v['matches']}{'+' if v['capped'] else ''} ({v['results']} rows)"
            for k, v in r["resources"].items()
        )

    markdown = "\n\n".join(
        [
            f"### search_bound ({args.rows:,} transactions, {result['index']['entries']:,} "
            f"entries; index build {result['index']['build_s']} s; {own.repeat} requests a text)",
            machine.one_line(info),
            report.table(
                ["phase", "q", "answer", "median ms", "worker RSS / peak MiB"],
                [
                    [
                        r["phase"],
                        f"`{r['q']}`",
                        shown(r),
                        report.fmt(r["median_ms"]),
                        f"{r['rss_mib']} / {r['peak_mib']}",
                    ]
                    for r in runs
                ],
            ),
            f"worker: started {result['worker_started']}, warm {result['worker_warm']}, "
            f"end {result['worker_end']}",
            report.targets_table(checks),
        ]
    )
    return report.publish(
        NAME,
        {
            "started": stamp,
            "options": {**vars(args), "own": vars(own)},
            "database": side.database,
            "machine": info,
            **result,
            "runs": runs,
            "figures": figures,
            "targets": checks,
            "passed": passed,
        },
        markdown,
    )
