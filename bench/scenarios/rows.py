"""The rows endpoint (issues 2 and 3), against its ceiling and its naive peer in one run.

Scenarios (gunicorn, 2 sync workers, `benchsite.settings`, request log on; wrk 2 threads):

    ceiling         /bench/ceiling/              bare DRF APIView, 10 fixed rows, same auth
    ceiling_logged  /api/bench/ceiling/          the same, request-logged (information)
    naive           /bench/naive/                ListAPIView + ModelSerializer + exact count
    a               rows/?country=FR&amount__gt=100&fields=...            page 1
    a_nolog         (a) on a second server without the request log (benchsite.settings_nolog),
                    alternating with (a) in --slices slices (ABBA): issue 3
    b               the same from the next_cursor of page --cursor-page (row 1,000,001 on)
    c               the same, page=1000 (OFFSET 9,990)

Targets (issue 2): (a) and (b) >= 45% of the ceiling's req/s, >= 2x the naive peer's,
p99 < 50 ms; (c) p99 < 100 ms. Issue 3: the request log costs (a) <= 10% of its req/s
(median of the per-round 1 - rps(a) / rps(a_nolog)).
"""

from __future__ import annotations

import statistics
import time

from bench.harness import db, drivers, machine, report
from bench.harness.report import Target
from bench.harness.scenario import Http, Side, drive

NAME = "rows"
DESCRIPTION = "rows endpoint (issues 2, 3): vs a bare-DRF ceiling and a naive peer; log cost"
FIELDS = "transaction_id,timestamp,country,amount,status,payment_method"
ROWS_PATH = f"/api/v1/resources/transactions/rows/?country=FR&amount__gt=100&fields={FIELDS}"
FILTER_SQL = "valid_to IS NULL AND country = 'FR' AND amount > 100"
SERVERS = {"main": "benchsite.settings", "nolog": "benchsite.settings_nolog"}
SCENARIOS = [
    Http("ceiling", "ceiling: bare DRF view, 10 fixed rows"),
    Http("ceiling_logged", "(info) the ceiling under /api/, request-logged"),
    Http("naive", "naive peer: ModelSerializer + PageNumberPagination"),
    Http("a", "(a) rows page 1, country=FR&amount__gt=100", group="log"),
    Http("a_nolog", "(a) without the request-log middleware", server="nolog", group="log"),
    Http("b", "(b) rows by cursor, deep"),
    Http("c", "(c) rows page=1000"),
]
TARGETS = [
    *(
        t
        for s in ("a", "b")
        for t in (
            Target(f"({s}) >= 45% of the ceiling's req/s", s, "rps", ">=", 0.45, peer="ceiling"),
            Target(f"({s}) >= 2x the naive peer's req/s", s, "rps", ">=", 2.0, peer="naive"),
            Target(f"({s}) p99 < 50 ms", s, "p99_ms", "<", 50.0),
        )
    ),
    Target("(c) p99 < 100 ms", "c", "p99_ms", "<", 100.0),
    Target("issue 3: the request log costs (a) <= 10%", "a", "log_cost", "<=", 0.10),
]
COMPARE = ["ceiling", "a", "b", "c"]  # the naive peer takes seconds a request at 10M rows
DEFAULTS = {"rounds": 1}


def add_arguments(group) -> None:
    group.add_argument("--cursor-page", type=int, default=100_000, help="(b) starts after it")


def prepare_data(side: Side, args) -> None:
    """The database (migrated by the side's tree) and its transactions; once per database."""
    if side.database in PREPARED:
        return
    db.prepare(side.tree, side.database, args.rows)
    PREPARED.add(side.database)


PREPARED: set[str] = set()


def prepare(side: Side, args) -> None:
    prepare_data(side, args)
    side.tokens["bench"] = side.job(
        "token", username="bench", grants=[{"resource": "transactions", "privilege": "read"}]
    )["token"]
    page = min(args.cursor_page, max(1, args.rows // 200))  # a small table: a deep-enough page
    found = side.job("cursor", filter_sql=FILTER_SQL, page=page)
    side.notes.update(
        cursor_page=page, expected_after_cursor=found["expected_next"], matching=found["matching"]
    )
    deep = min(1000, max(1, found["matching"] // 20))  # a small table: half its pages
    side.notes["deep_page"] = deep
    for scenario in SCENARIOS:
        if scenario.name == "b":
            scenario.label = f"(b) rows by cursor: row {page * 10 + 1:,} on"
        elif scenario.name == "c":
            scenario.label = f"(c) rows page={deep}"
    side.paths.update(
        ceiling="/bench/ceiling/",
        ceiling_logged="/api/bench/ceiling/",
        naive="/bench/naive/",
        a=ROWS_PATH,
        a_nolog=ROWS_PATH,
        b=f"{ROWS_PATH}&cursor={found['cursor']}",
        c=f"{ROWS_PATH}&page={deep}",
    )


def expect(side: Side, scenario: Http):
    """(b) must start at the row after the cursor's."""
    if scenario.name != "b":
        return None
    want = side.notes["expected_after_cursor"]

    def check(body):
        got = body["results"][0].get("transaction_id")
        return None if got == want else f"first row {got}, expected {want}"

    return check


def run(side: Side, args) -> bool:
    drivers.require_wrk()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    prepare(side, args)
    info = machine.facts(side.db_url, side.tree)
    side.start(SERVERS)
    for scenario in SCENARIOS:
        body = side.check(scenario, expect(side, scenario))
        drivers.log(f"  {scenario.name}: 200, {len(body['results'])} rows")
    chosen = [s for s in SCENARIOS if not args.only or s.name in args.only]
    if args.only and any(s.group == "log" for s in chosen):  # (a) and a_nolog go together
        chosen = [s for s in SCENARIOS if s in chosen or s.group == "log"]
    runs = drive(side, chosen, args)
    side.stop()
    figures = report.summarise(runs)
    nan = float("nan")
    ceiling, naive = figures.get("ceiling", {}), figures.get("naive", {})
    for f in figures.values():
        f["x_ceiling"] = f["rps"] / ceiling.get("rps", nan)
        f["x_naive"] = f["rps"] / naive.get("rps", nan)
        f["x_ceiling_cpu"] = ceiling.get("cpu_ms_per_req", nan) / (f["cpu_ms_per_req"] or 1e-9)
    per_round = [
        1 - a["rps"] / n["rps"]
        for a, n in zip(runs.get("a", []), runs.get("a_nolog", []), strict=True)
    ]
    if per_round:
        figures["a"]["log_cost"] = statistics.median(per_round)
        figures["a"]["log_cost_rounds"] = per_round
        figures["a"]["log_cost_by_cpu"] = 1 - (
            figures["a_nolog"]["cpu_ms_per_req"] / figures["a"]["cpu_ms_per_req"]
        )
    checks = report.check_all(TARGETS, figures)
    passed = all(c["passed"] for c in checks)
    labels = {s.name: s.label for s in SCENARIOS}
    rows = [
        [
            labels[name],
            report.fmt(f["rps"], ",.0f"),
            report.fmt(f["p50_ms"]),
            report.fmt(f["p99_ms"]),
            report.fmt(f["x_ceiling"], ".0%"),
            report.fmt(f["x_naive"], ",.1f") + "x" if f["x_naive"] == f["x_naive"] else "-",
            report.fmt(f["cpu_ms_per_req"], ".2f"),
            report.fmt(f["x_ceiling_cpu"], ".0%"),
            f"{f['foreign_cpu_max']:.0%}",
            str(f["errors"]),
        ]
        for name, f in figures.items()
    ]
    markdown = "\n\n".join(
        [
            f"### rows ({args.rows:,} transactions, {side.notes['matching']:,} match; "
            f"{args.rounds} round(s) of {args.duration} s, {args.connections} connections)",
            machine.one_line(info),
            report.table(
                [
                    "scenario",
                    "req/s",
                    "p50 ms",
                    "p99 ms",
                    "x ceiling",
                    "x naive",
                    "server CPU ms/req",
                    "x ceiling by CPU",
                    "other work",
                    "errors",
                ],
                rows,
            ),
            "request log cost per round: "
            + ", ".join(f"{c:.1%}" for c in per_round)
            + (f"; by server CPU {figures['a']['log_cost_by_cpu']:.1%}" if per_round else ""),
            report.targets_table(checks),
        ]
    )
    return report.publish(
        NAME,
        {
            "started": stamp,
            "options": vars(args),
            "machine": info,
            "paths": side.paths,
            "runs": runs,
            "figures": figures,
            "targets": checks,
            "passed": passed,
        },
        markdown,
    )
