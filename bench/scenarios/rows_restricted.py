"""The rows endpoint under a restricted grant against the same query unrestricted (issue 9).

The query of `rows` (a) (`country=FR&amount__gt=100&fields=...`) on one server, by two
users: `bench` holds a plain `read` grant on transactions; `bench_restricted` one with
`columns` (the six projected), a `row_filter` ({"country": ["FR", "DE"]}) and `masked`
(["payment_method"]): every restriction path runs (column check, row filter in the SQL,
pseudonyms). The two alternate in --slices slices, the first flipping each round.
Target: the restricted one at least 85% of the unrestricted req/s.
"""

from __future__ import annotations

import time

from bench.harness import drivers, machine, report
from bench.harness.report import Target
from bench.harness.scenario import Http, Side, drive
from bench.scenarios import rows

NAME = "rows_restricted"
DESCRIPTION = "rows endpoint under a restricted grant vs unrestricted (issue 9)"
RESTRICTION = {
    "columns": rows.FIELDS.split(","),
    "row_filter": {"country": ["FR", "DE"]},
    "masked": ["payment_method"],
}
SERVERS = {"main": "benchsite.settings"}
SCENARIOS = [
    Http("unrestricted", "(a) with a plain read grant", token="bench", group="grant"),
    Http(
        "restricted",
        "(a) with columns + row_filter + masked",
        token="bench_restricted",
        group="grant",
    ),
]
TARGETS = [
    Target(
        "restricted >= 85% of unrestricted req/s",
        "restricted",
        "rps",
        ">=",
        0.85,
        peer="unrestricted",
    ),
]
COMPARE = ["unrestricted", "restricted"]
DEFAULTS = {"rounds": 3, "slices": 2}


def prepare(side: Side, args) -> None:
    rows.prepare_data(side, args)
    side.tokens["bench"] = side.job(
        "token", username="bench", grants=[{"resource": "transactions", "privilege": "read"}]
    )["token"]
    side.tokens["bench_restricted"] = side.job(
        "token",
        username="bench_restricted",
        grants=[{"resource": "transactions", "privilege": "read", **RESTRICTION}],
    )["token"]
    side.paths.update(unrestricted=rows.ROWS_PATH, restricted=rows.ROWS_PATH)


def expect(side: Side, scenario: Http):
    if scenario.name != "restricted":
        return None
    return lambda body: (
        None
        if str(body["results"][0].get("payment_method", "")).startswith("anon_")
        else "payment_method is not masked"
    )


def run(side: Side, args) -> bool:
    drivers.require_wrk()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    prepare(side, args)
    info = machine.facts(side.db_url, side.tree)
    side.start(SERVERS)
    side.idle["main"] = drivers.idle_latency(side.servers["main"].base, side.tokens["bench"])
    for scenario in SCENARIOS:
        body = side.check(scenario, expect(side, scenario))
        drivers.log(f"  {scenario.name}: 200, {len(body['results'])} rows, count {body['count']}")
    runs = drive(side, SCENARIOS, args)
    side.stop()
    figures = report.summarise(runs)
    per_round = [
        r["rps"] / u["rps"] for r, u in zip(runs["restricted"], runs["unrestricted"], strict=True)
    ]
    checks = report.check_all(TARGETS, figures)
    passed = all(c["passed"] for c in checks)
    markdown = "\n\n".join(
        [
            f"### rows_restricted ({args.rows:,} transactions; {args.rounds} rounds of "
            f"{args.duration} s in {args.slices} slices, {args.connections} connections)",
            machine.one_line(info),
            report.table(
                ["grant", "req/s", "p50 ms", "p99 ms", "server CPU ms/req", "errors"],
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
            "restricted / unrestricted per round: " + ", ".join(f"{r:.0%}" for r in per_round),
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
            "restriction": RESTRICTION,
            "runs": runs,
            "figures": figures,
            "ratio_rounds": per_round,
            "targets": checks,
            "passed": passed,
        },
        markdown,
    )
