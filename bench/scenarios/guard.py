"""The cost guard (issue 21): what it adds to page 1 of the rows endpoint.

The query of `rows` (a) (`country=FR&amount__gt=100&fields=...`), page 1, on two
servers alike but for the guard: `on` (benchsite.settings, LAKE_QUERY_MAX_COST as
configured) and `off` (benchsite.settings_noguard, LAKE_QUERY_MAX_COST=0). They
alternate in --slices slices, the first flipping each round. Target (issue 21): the
guard costs page 1 at most 5% of its req/s (median of the per-round
1 - rps(on) / rps(off)).

Before timing, the must-show on the same data: `page=50000` is refused by the `on`
server (400 `query_too_expensive`, with the estimate and the hints) and the `off`
server serves it; both are in the report.
"""

from __future__ import annotations

import statistics
import time

from bench.harness import drivers, machine, report
from bench.harness.report import Target
from bench.harness.scenario import Http, Side, drive
from bench.scenarios import rows

NAME = "guard"
DESCRIPTION = "rows page 1 with the cost guard vs without (issue 21)"
SERVERS = {"on": "benchsite.settings", "off": "benchsite.settings_noguard"}
SCENARIOS = [
    Http("on", "(a) rows page 1, the cost guard on", server="on", group="guard"),
    Http("off", "(a) rows page 1, the cost guard off", server="off", group="guard"),
]
TARGETS = [Target("issue 21: the guard costs page 1 <= 5%", "on", "guard_cost", "<=", 0.05)]
COMPARE = ["on"]
DEFAULTS = {"rounds": 3, "slices": 4}
DEEP_PAGE = 50_000


def prepare(side: Side, args) -> None:
    rows.prepare_data(side, args)
    side.tokens["bench"] = side.job(
        "token", username="bench", grants=[{"resource": "transactions", "privilege": "read"}]
    )["token"]
    side.paths.update(on=rows.ROWS_PATH, off=rows.ROWS_PATH)


def deep_page(side: Side) -> dict:
    """`page=50000` (no filter) on each server: the status, and what the guard said."""
    out = {}
    for server in SERVERS:
        base = side.servers[server].base
        started = time.perf_counter()
        status, body = drivers.get(
            base, f"/api/v1/resources/transactions/rows/?page={DEEP_PAGE}", side.tokens["bench"],
            300, error_body=True,
        )  # fmt: skip
        out[server] = {
            "status": status,
            "ms": round((time.perf_counter() - started) * 1000, 1),
            **{k: (body or {}).get(k) for k in ("code", "estimated_cost", "max_cost", "hints")},
        }
        drivers.log(f"  page={DEEP_PAGE} guard {server}: {out[server]}")
    return out


def run(side: Side, args) -> bool:
    drivers.require_wrk()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    prepare(side, args)
    info = machine.facts(side.db_url, side.tree)
    side.start(SERVERS)
    for scenario in SCENARIOS:
        body = side.check(scenario)
        drivers.log(f"  {scenario.name}: 200, {len(body['results'])} rows")
    deep = deep_page(side)
    runs = drive(side, SCENARIOS, args)
    side.stop()
    figures = report.summarise(runs)
    per_round = [1 - a["rps"] / b["rps"] for a, b in zip(runs["on"], runs["off"], strict=True)]
    figures["on"]["guard_cost"] = statistics.median(per_round)
    figures["on"]["guard_cost_by_cpu"] = 1 - (
        figures["off"]["cpu_ms_per_req"] / figures["on"]["cpu_ms_per_req"]
    )
    checks = report.check_all(TARGETS, figures)
    passed = all(c["passed"] for c in checks)
    markdown = "\n\n".join(
        [
            f"### guard ({args.rows:,} transactions; {args.rounds} rounds of {args.duration} s "
            f"in {args.slices} slices, {args.connections} connections)",
            machine.one_line(info),
            report.table(
                ["cost guard", "req/s", "p50 ms", "p99 ms", "server CPU ms/req", "errors"],
                [
                    [
                        name,
                        report.fmt(f["rps"], ",.0f"),
                        report.fmt(f["p50_ms"]),
                        report.fmt(f["p99_ms"]),
                        report.fmt(f["cpu_ms_per_req"], ".2f"),
                        str(f["errors"]),
                    ]
                    for name, f in figures.items()
                ],
            ),
            "guard cost per round: "
            + ", ".join(f"{c:.1%}" for c in per_round)
            + f"; by server CPU {figures['on']['guard_cost_by_cpu']:.1%}",
            f"page={DEEP_PAGE}: guard on {deep['on']['status']} "
            f"`{deep['on']['code']}` (estimated cost {deep['on']['estimated_cost']}, limit "
            f"{deep['on']['max_cost']}); guard off {deep['off']['status']} in "
            f"{deep['off']['ms']} ms",
            report.targets_table(checks),
        ]
    )
    return report.publish(
        NAME,
        {
            "started": stamp,
            "options": vars(args),
            "machine": info,
            "path": rows.ROWS_PATH,
            "deep_page": deep,
            "runs": runs,
            "figures": figures,
            "guard_cost_rounds": per_round,
            "targets": checks,
            "passed": passed,
        },
        markdown,
    )
