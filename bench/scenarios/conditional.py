"""Conditional reads (issue 21): a 304 against the full page it stands for, in one run.

Scenarios (gunicorn, 2 sync workers, `benchsite.settings`, request log on; wrk 2 threads),
alternating in --slices slices (ABBA) so that both see the same machine:

    page        rows/?country=FR&amount__gt=100&fields=...   page 1, answered 200
    page_304    the same with If-None-Match: its ETag         answered 304, no page query
    walk        the same from a deep next_cursor              a pinned version's page, 200
    walk_304    the same with its ETag                        304
    ceiling     /api/bench/ceiling/: a bare DRF view with the product's token
                authentication, 10 fixed rows, request-logged (the stack's floor)

Target: a 304 at least 2x the req/s of the full page it stands for. The ceiling says
what the stack itself costs in the same run: a 304 at or above it is at the framework's
floor (gunicorn, Django's middleware, DRF's dispatch and the token lookup).
"""

from __future__ import annotations

import time

from bench.harness import drivers, machine, report
from bench.harness.report import Target
from bench.harness.scenario import Http, Side, drive
from bench.scenarios.rows import FILTER_SQL, ROWS_PATH, prepare_data

NAME = "conditional"
DESCRIPTION = "conditional reads (issue 21): If-None-Match -> 304 vs the full page"
SERVERS = {"main": "benchsite.settings"}
SCENARIOS = [
    Http("page", "rows page 1, 200", group="page"),
    Http("page_304", "the same, If-None-Match: 304", group="page", conditional=True),
    Http("walk", "rows by a deep cursor (a pinned version), 200", group="walk"),
    Http("walk_304", "the same, If-None-Match: 304", group="walk", conditional=True),
    Http("ceiling", "(reference) bare DRF view, token auth, 10 fixed rows, logged", group="page"),
]
TARGETS = [
    Target("a 304 >= 2x the req/s of page 1", "page_304", "rps", ">=", 2.0, peer="page"),
    Target("a 304 >= 2x the req/s of a cursor page", "walk_304", "rps", ">=", 2.0, peer="walk"),
]
DEFAULTS = {"rounds": 1, "slices": 4}


def add_arguments(group) -> None:
    group.add_argument("--walk-page", type=int, default=10_000, help="the walk starts after it")


def prepare(side: Side, args) -> None:
    prepare_data(side, args)
    side.tokens["bench"] = side.job(
        "token", username="bench", grants=[{"resource": "transactions", "privilege": "read"}]
    )["token"]
    page = min(args.walk_page, max(1, args.rows // 200))
    found = side.job("cursor", filter_sql=FILTER_SQL, page=page)
    side.notes.update(cursor_page=page, matching=found["matching"])
    deep = f"{ROWS_PATH}&cursor={found['cursor']}"
    side.paths.update(
        page=ROWS_PATH, page_304=ROWS_PATH, walk=deep, walk_304=deep, ceiling="/api/bench/ceiling/"
    )


def run(side: Side, args) -> bool:
    drivers.require_wrk()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    prepare(side, args)
    info = machine.facts(side.db_url, side.tree)
    side.start(SERVERS)
    for scenario in SCENARIOS:
        if not scenario.conditional:
            body = side.check(scenario)
            drivers.log(f"  {scenario.name}: 200, {len(body['results'])} rows")
    runs = drive(side, [s for s in SCENARIOS if not args.only or s.name in args.only], args)
    side.stop()
    figures = report.summarise(runs)
    for name, peer in (("page_304", "page"), ("walk_304", "walk")):
        if name in figures and peer in figures:
            figures[name]["x_full"] = figures[name]["rps"] / figures[peer]["rps"]
    for name, f in figures.items():
        if "ceiling" in figures and name != "ceiling":
            f["x_ceiling"] = f["rps"] / figures["ceiling"]["rps"]
    checks = report.check_all(TARGETS, figures)
    labels = {s.name: s.label for s in SCENARIOS}
    rows = [
        [
            labels[name],
            report.fmt(f["rps"], ",.0f"),
            report.fmt(f["p50_ms"]),
            report.fmt(f["p99_ms"]),
            report.fmt(f.get("x_full", float("nan")), ".2f") + "x" if "x_full" in f else "-",
            f"{f['x_ceiling']:.0%}" if "x_ceiling" in f else "-",
            report.fmt(f["cpu_ms_per_req"], ".2f"),
            f"{f['foreign_cpu_max']:.0%}",
            str(f["errors"]),
        ]
        for name, f in figures.items()
    ]
    markdown = "\n\n".join(
        [
            f"### conditional ({args.rows:,} transactions, {side.notes['matching']:,} match; "
            f"{args.rounds} round(s) of {args.duration} s in {args.slices} slices, "
            f"{args.connections} connections)",
            machine.one_line(info),
            report.table(
                [
                    "scenario",
                    "req/s",
                    "p50 ms",
                    "p99 ms",
                    "x full page",
                    "x ceiling",
                    "server CPU ms/req",
                    "other work",
                    "errors",
                ],
                rows,
            ),
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
            "passed": all(c["passed"] for c in checks),
        },
        markdown,
    )
