"""Search (issue 7): latency over HTTP on 10M transactions, index build, ingestion cost.

Three parts, in one run:

1. Index build. Its own database `<--database>_search` (`datalake_bench_search`,
   created and migrated if missing, its lake a temporary folder with a landing folder
   `transactions`, so that migrate registers `raw_transactions`), `--rows`
   transactions (bench/load_transactions.py: SQL, so no merge indexes them; skipped when
   there), then `search_entries` emptied and `manage.py rebuild_search_index` timed (the
   first install of the index over a full table), then `VACUUM (ANALYZE)
   search_entries` (what autovacuum would do: the statistics the plan is chosen from),
   and the sizes of `search_entries` (with each index) and `transactions`.
2. Search over HTTP: `GET /api/v1/search/?q=<q>&since=2026-01-01` (gunicorn, 2 sync
   workers, benchsite.settings; the `bench` user holding `read` on `transactions` and
   `raw_transactions`) for an id (exactly one match), a country name (`Germany`, 14% of
   the rows), a frequent word (`refunded`, 4%) and, for information, a word of middling
   frequency (`P00005`, ~0.3%: the walk plan's worst case). Each is checked once (200,
   the id exactly its record), then each round: one connection's sequential requests
   (the verdict: the issue's latency names no concurrency) and wrk (information). Also
   recorded, in-process (a set-up job in the measured tree's code): the plan
   `datalake/search/query.py` picks, the view's time split by SQL statement, EXPLAIN
   (ANALYZE, BUFFERS) of its search statements.
3. The index's cost to ingestion, on its own database `<--database>_search_ingest`:
   `--ingest-rows` transactions in `--ingest-days` daily files (the ingest benchmark's
   generator) through the real path from empty tables, with the index on and off
   (alternating order by round). Cost = median over rounds of 1 - rows/s(on) /
   rows/s(off); after each indexed pass, one current entry per ingested row naming its
   file and line.

Targets: p50 < 50 ms and p99 < 200 ms (one client) for the id, the country and the
word; the index costs ingestion <= 30% (and every entry right). Its own options:
`--search-args "--profile-runs 15 --ingest-rows 1000000 --ingest-days 10
--ingest-rounds 2 --seed 4 --skip-build --skip-http --skip-ingest"`.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import tempfile
import time
import urllib.parse
from pathlib import Path

from bench import load_transactions as lt
from bench.harness import db, drivers, machine, report
from bench.harness.report import Target
from bench.harness.scenario import Http, Measure, Side, drive
from bench.harness.tree import BENCH

NAME = "search"
DESCRIPTION = "search (issue 7): latency on 10M rows, index build, ingestion cost"
SERVERS = {"main": "benchsite.settings"}
SCENARIOS = [
    Http("id", "id", measures=("single", "wrk")),
    Http("country", "country name", measures=("single", "wrk")),
    Http("word", "frequent word", measures=("single", "wrk")),
    Http("mid", "(info) mid-frequency word", measures=("single", "wrk")),
    Measure("build", "index build: rebuild_search_index from empty"),
    Measure("ingest", "ingestion, real path, with and without the index"),
]
TARGETS = [
    *(
        t
        for s in ("id", "country", "word")
        for t in (
            Target(f"({s}) p50 < 50 ms, one client", s, "single_p50_ms", "<", 50.0),
            Target(f"({s}) p99 < 200 ms, one client", s, "single_p99_ms", "<", 200.0),
        )
    ),
    Target("the search index costs ingestion <= 30%", "ingest", "cost", "<=", 0.30),
    Target("one current entry per ingested row, with its file", "ingest", "entries_ok", ">=", 1),
]
DEFAULTS = {"rounds": 3}
SINCE = "2026-01-01"  # load_transactions' first day: every row is on or after it
GRANTED = ("transactions", "raw_transactions")
SEARCH_TABLE_INDEXES = ("search_doc", "search_key", "search_current_at", "search_raw_at")
JOB = str(BENCH / "scenarios" / "_search_job.py")


def own_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="--search-args", add_help=False)
    parser.add_argument("--profile-runs", type=int, default=15, help="in-process view calls")
    parser.add_argument("--ingest-rows", type=int, default=1_000_000)
    parser.add_argument("--ingest-days", type=int, default=10)
    parser.add_argument("--ingest-rounds", type=int, default=2, help="pairs of on/off passes")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--skip-build", action="store_true", help="reuse the index there")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--keep-file-details", action="store_true")
    return parser


def add_arguments(group) -> None:
    group.add_argument(
        "--search-args", default="", metavar="ARGS",
        help="its own options: --profile-runs N (15), --ingest-rows N (1,000,000), "
        "--ingest-days N (10), --ingest-rounds N (2), --seed N (4), --skip-build, "
        "--skip-http, --skip-ingest, --keep-file-details",
    )  # fmt: skip


def weight(choices, value) -> float:
    return next(w for v, w in choices if v == value) / 100


def cases_for(rows: int) -> dict[str, dict]:
    """The texts searched: an id, a country name, a frequent word (+ one for information)."""
    planted = rows * 3 // 4 + 1
    p5 = (6 / lt.PRODUCTS) ** 0.5 - (5 / lt.PRODUCTS) ** 0.5  # product = floor(5000 u^2)
    return {
        "id": {"q": f"TX-{planted:08d}", "what": f"transaction_id of row {planted:,}",
               "sql": f"transaction_id = 'TX-{planted:08d}'", "expected_share": 1 / rows},
        "country": {"q": "Germany", "what": "English name of DE, indexed with the code",
                    "sql": "country = 'DE'", "expected_share": weight(lt.COUNTRIES, "DE")},
        "word": {"q": "refunded", "what": "status `refunded`", "sql": "status = 'refunded'",
                 "expected_share": weight(lt.STATUSES, "refunded")},
        "mid": {"q": "P00005", "what": "product P00005: the walk's worst case",
                "sql": "product_id = 'P00005'", "expected_share": p5},
    }  # fmt: skip


def path_of(q: str) -> str:
    return "/api/v1/search/?" + urllib.parse.urlencode({"q": q, "since": SINCE})


# -- part 1 -------------------------------------------------------------------------------


def build(side: Side, args, own, lake: Path) -> dict:
    """Create/migrate the database, load the rows, then time the index build."""
    db.ensure(side.database)
    side.tree.manage(side.db_url, "migrate", "--verbosity", "0", env={"LAKE_ROOT": str(lake)})
    url = side.db_url
    t0 = time.perf_counter()
    loaded = lt.load(url, args.rows, seed=42, replace=True)
    out: dict = {
        "measured": False,
        "loaded_now": loaded,
        "load_s": round(time.perf_counter() - t0, 1),
    }
    if not own.skip_build:
        db.sql(url, "TRUNCATE search_entries")
        db.sql(url, "CHECKPOINT")
        drivers.log(f"building the index: manage.py rebuild_search_index on {args.rows:,} rows")
        t0 = time.perf_counter()
        said = side.tree.manage(
            url, "rebuild_search_index", env={"LAKE_ROOT": str(lake)}, capture=True
        )
        wall = time.perf_counter() - t0
        found = re.search(r"indexed ([\d,]+) records in ([\d.]+) s", said)
        out.update(
            measured=True,
            wall_s=round(wall, 1),
            command_s=float(found.group(2)) if found else None,
            command_output=said.strip(),
            entries_indexed=int(found.group(1).replace(",", "")) if found else None,
        )
        drivers.log(f"index built in {wall:.1f} s ({said.strip()})")
    t0 = time.perf_counter()
    db.sql(url, "VACUUM (ANALYZE) search_entries")
    out["vacuum_analyze_s"] = round(time.perf_counter() - t0, 1)
    return out


def sizes(url: str) -> dict:
    out = {}
    for rel in ("search_entries", "transactions"):
        out[f"{rel}_total_bytes"] = db.sql(url, "SELECT pg_total_relation_size(%s)", [rel])[0][0]
        out[f"{rel}_heap_bytes"] = db.sql(url, "SELECT pg_relation_size(%s)", [rel])[0][0]
    for index in SEARCH_TABLE_INDEXES:
        out[f"{index}_bytes"] = db.sql(url, "SELECT pg_relation_size(%s)", [index])[0][0]
    rows = db.sql(
        url,
        "SELECT (SELECT count(*) FROM search_entries), "
        "(SELECT count(*) FROM search_entries WHERE resource = 'transactions' "
        "AND valid_to IS NULL), (SELECT count(*) FROM transactions WHERE valid_to IS NULL)",
    )[0]
    out.update(search_entries=rows[0], search_entries_transactions=rows[1], transactions=rows[2])
    return out


def shares(url: str, cases: dict) -> None:
    """The real share of the rows each text matches (one scan of the table)."""
    cols = ", ".join(f"count(*) FILTER (WHERE {c['sql']})" for c in cases.values())
    counts = db.sql(url, f"SELECT count(*), {cols} FROM transactions WHERE valid_to IS NULL")[0]
    for case, n in zip(cases.values(), counts[1:], strict=True):
        case["rows_matching"] = n
        case["share"] = n / max(1, counts[0])


# -- part 2 -------------------------------------------------------------------------------


def check(side: Side, cases: dict) -> None:
    """Each text answers 200 with matches before it is timed; the id exactly its record."""
    base, token = side.servers["main"].base, side.tokens["bench"]
    for name, case in cases.items():
        status, body = drivers.get(base, path_of(case["q"]), token, error_body=True)
        found = {r["resource"]: r for r in (body or {}).get("resources", [])}
        if status != 200 or not found:
            raise SystemExit(f"{name}: {path_of(case['q'])} answered {status} with {body}")
        if name == "id":
            tx = found.get("transactions")
            keys = [h["key"] for h in (tx or {}).get("results", [])]
            if not tx or tx["matches"] != 1 or keys != [case["q"]]:
                raise SystemExit(f"id {case['q']}: expected exactly it, got {found}")
        case["answer"] = {
            "total": body["total"],
            "resources": {
                r: {"matches": v["matches"], "capped": v["matches_capped"],
                    "results": len(v["results"])}
                for r, v in found.items()
            },
        }  # fmt: skip
        drivers.log(f"  {name} q={case['q']}: 200, {case['answer']['resources']}")


def http_part(side: Side, args, own, cases: dict, lake: Path) -> dict:
    side.tokens["bench"] = side.job(
        "token", username="bench", grants=[{"resource": r, "privilege": "read"} for r in GRANTED]
    )["token"]
    drivers.log("in-process: plan, time by statement, EXPLAIN ANALYZE")
    profiled = side.job(
        JOB + ":profile",
        _env={"LAKE_ROOT": str(lake)},
        cases={n: {"q": c["q"]} for n, c in cases.items()},
        token=side.tokens["bench"],
        runs=own.profile_runs,
    )
    for name, got in profiled.items():
        cases[name].update(got)
        drivers.log(
            f"  {cases[name]['q']}: plan {got['plan']}, view in-process "
            f"{got['inprocess_ms']['view_total_median']:.1f} ms median"
        )
    side.paths.update({name: path_of(case["q"]) for name, case in cases.items()})
    side.start(SERVERS, env={"LAKE_ROOT": str(lake)})
    check(side, cases)
    http = [s for s in SCENARIOS if isinstance(s, Http)]
    runs = drive(side, [s for s in http if not args.only or s.name in args.only], args)
    side.stop()
    return runs


# -- part 3 -------------------------------------------------------------------------------


def ingest_part(side: Side, args, own) -> dict:
    database = f"{side.database}_ingest"
    drivers.OWN_DATABASES.add(database)
    url = db.url_of(database)
    lake = Path(tempfile.mkdtemp(prefix="bench_search_ingest_"))
    (lake / "landing" / "transactions").mkdir(parents=True)
    try:
        db.ensure(database)
        side.tree.manage(url, "migrate", "--verbosity", "0", env={"LAKE_ROOT": str(lake)})
        drivers.log(
            f"ingestion cost: {own.ingest_rows:,} rows in {own.ingest_days} files, "
            f"{own.ingest_rounds} round(s) of on/off, database {database}"
        )
        got = side.tree.job(
            url,
            JOB + ":ingest_cost",
            _env={"LAKE_ROOT": str(lake)},
            rows=own.ingest_rows,
            days=own.ingest_days,
            rounds=own.ingest_rounds,
            seed=own.seed,
            keep_file_details=own.keep_file_details,
        )
    finally:
        shutil.rmtree(lake, ignore_errors=True)
    got["database"] = database
    for p in got["passes"]:
        drivers.log(
            f"  index {'on' if p['index_enabled'] else 'off'}: {p['rows_per_s']:,} rows/s, "
            f"merge {p['phases_total'].get('merge', 0):.1f} s, of which search hook "
            f"{p['phases_total'].get('search_index', 0):.1f} s; entries "
            f"{'right' if p['search_entries']['passed'] else 'WRONG'}"
        )
    return got


# -- the run ------------------------------------------------------------------------------


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def tables(cases: dict, figures: dict, b: dict, s: dict, ing: dict) -> list[str]:
    out = []
    if s:
        out.append(
            f"Data: {s['transactions']:,} current transactions; {s['search_entries']:,} search "
            f"entries. `transactions` {gib(s['transactions_total_bytes'])} (heap "
            f"{gib(s['transactions_heap_bytes'])}); `search_entries` "
            f"{gib(s['search_entries_total_bytes'])} (heap {gib(s['search_entries_heap_bytes'])}"
            + "".join(f", `{i}` {gib(s[f'{i}_bytes'])}" for i in SEARCH_TABLE_INDEXES)
            + ")."
        )
    http = [n for n in cases if n in figures]
    if http:
        out.append(
            report.table(
                [
                    "query",
                    "q",
                    "share of rows",
                    "plan",
                    "answer",
                    "1 conn. p50 ms",
                    "1 conn. p99 ms",
                    "wrk req/s",
                    "wrk p50 ms",
                    "wrk p99 ms",
                    "in-process ms",
                ],
                [
                    [
                        next(x.label for x in SCENARIOS if x.name == n),
                        f"`{cases[n]['q']}`",
                        f"{cases[n].get('share', 0):.2%}",
                        cases[n].get("plan", "?"),
                        ", ".join(
                            f"{r} {v['matches']}{'+' if v['capped'] else ''}"
                            for r, v in cases[n].get("answer", {}).get("resources", {}).items()
                        ),
                        report.fmt(figures[n].get("single_p50_ms")),
                        report.fmt(figures[n].get("single_p99_ms")),
                        report.fmt(figures[n].get("rps"), ",.0f"),
                        report.fmt(figures[n].get("p50_ms")),
                        report.fmt(figures[n].get("p99_ms")),
                        report.fmt(cases[n].get("inprocess_ms", {}).get("view_total_median")),
                    ]
                    for n in http
                ],
            )
        )
    rows = []
    if b.get("measured"):
        rows.append(
            [f"index build from empty, {b.get('entries_indexed') or 0:,} entries",
             f"{b['wall_s']:.1f} s wall ({b.get('command_s')} s by the command); "
             f"then VACUUM (ANALYZE) {b['vacuum_analyze_s']:.1f} s"]
        )  # fmt: skip
    elif b:
        rows.append(["index build", "not measured (--skip-build)"])
    if "cost" in ing:
        rows += [
            [f"ingestion, real path, {ing['rows']:,} rows in {ing['days']} files, index on / off",
             f"{ing['rows_per_s_on']:,.0f} / {ing['rows_per_s_off']:,.0f} rows/s"],
            [f"cost of the index, 1 - on/off (rounds "
             f"{', '.join(f'{c:.1%}' for c in ing['cost_per_round'])}; order "
             f"{', '.join(ing['order'])})", f"{ing['cost']:.1%}"],
            ["(info) merge phase on / off; search hook inside it",
             f"{ing['merge_s_on']:.1f} s / {ing['merge_s_off']:.1f} s; hook "
             f"{ing['search_hook_s']:.1f} s"],
            ["one current entry per ingested row, with its file; a sample id found",
             "yes" if ing["entries_passed"] else "NO"],
        ]  # fmt: skip
    if rows:
        out.append(report.table(["measure", "value"], rows))
    return out


def run(side: Side, args) -> bool:
    own = own_parser().parse_args(shlex.split(args.search_args or ""))
    if not own.skip_http:
        drivers.require_wrk()
    side.database = f"{args.database}_search"
    drivers.OWN_DATABASES.add(side.database)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    cases = cases_for(args.rows)
    # The search database's lake: a landing folder `transactions`, so that migrate
    # registers `raw_transactions` (granted, searched; it holds no entries here).
    lake = Path(tempfile.mkdtemp(prefix="bench_search_lake_"))
    (lake / "landing" / "transactions").mkdir(parents=True)
    result: dict = {}
    figures: dict[str, dict] = {}
    runs: dict = {}
    try:
        result["build"] = build(side, args, own, lake)
        result["sizes"] = sizes(side.db_url)
        info = machine.facts(side.db_url, side.tree)
        shares(side.db_url, cases)
        if not own.skip_http:
            runs = http_part(side, args, own, cases, lake)
            figures = report.summarise(runs)
            for name in list(figures):
                if name.endswith(":single"):
                    single = figures.pop(name)
                    figures.setdefault(name.split(":")[0], {}).update(
                        single_p50_ms=single["p50_ms"],
                        single_p99_ms=single["p99_ms"],
                        single_requests=single["requests"],
                    )
    finally:
        side.stop()
        shutil.rmtree(lake, ignore_errors=True)
    if result["build"].get("measured"):
        figures["build"] = {"wall_s": result["build"]["wall_s"], "errors": 0}
    ing: dict = {}
    if not own.skip_ingest:
        ing = result["ingest"] = ingest_part(side, args, own)
        figures["ingest"] = {
            "cost": ing["cost"],
            "entries_ok": int(ing["entries_passed"]),
            "errors": 0,
        }
    checks = report.check_all(TARGETS, figures)
    complete = not (own.skip_http or own.skip_build or own.skip_ingest)
    passed = complete and bool(checks) and all(c["passed"] for c in checks)
    markdown = "\n\n".join(
        [
            f"### search ({args.rows:,} transactions, `GET /api/v1/search/?q=...&since={SINCE}`; "
            f"{args.rounds} round(s) of {args.duration} s, {args.connections} connections)",
            machine.one_line(info),
            *tables(cases, figures, result["build"], result["sizes"], ing),
            report.targets_table(checks)
            + ("" if complete else "\n\n(a part skipped: no overall verdict)"),
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
            "cases": cases,
            "runs": runs,
            "figures": figures,
            "targets": checks,
            "passed": passed,
        },
        markdown,
    )
