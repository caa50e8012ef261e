"""The cost guard (issue 21): what it adds to page 1 of the rows endpoint.

The query of `rows` (a) (`country=FR&amount__gt=100&fields=...`), page 1, on two
servers alike but for the guard: `on` (benchsite.settings, LAKE_QUERY_MAX_COST as
configured) and `off` (benchsite.settings_noguard, LAKE_QUERY_MAX_COST=0). They
alternate in --slices slices, the first flipping each round. Target (issue 21): the
guard costs page 1 at most 5% of its req/s (median of the per-round
1 - rps(on) / rps(off)).

Before timing, the must-show on the same data: `page=50000` is refused by the `on`
server (400 `query_too_expensive`, with the estimate and the hints) and the `off`
server serves it; both are in the report. Then how the limit was chosen: for each of
PROBES, its estimate (a third server, `probe`, with a limit of 0.001: every query is
refused and its 400 body tells the estimate) and its time on the `off` server.
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
# Page 1 of ordinary queries, deep pages, sorts by a column without index.
PROBES = [
    "",
    "country=FR&amount__gt=100",
    "country=FR&ordering=-amount",
    "ordering=-timestamp",
    "status=completed&ordering=-timestamp",
    "currency=EUR",
    "ordering=quantity&user_id=U00042",
    "amount__gt=900&ordering=quantity",
    "page=1000",
    "country=FR&amount__gt=100&page=1000",
    "page=10000",
    "country=FR&amount__gt=100&page=5000",
    "page=50000",
    "country=FR&ordering=quantity",
    "ordering=quantity",
]


def prepare(side: Side, args) -> None:
    rows.prepare_data(side, args)
    side.tokens["bench"] = side.job(
        "token", username="bench", grants=[{"resource": "transactions", "privilege": "read"}]
    )["token"]
    side.paths.update(on=rows.ROWS_PATH, off=rows.ROWS_PATH)


def deep_page(side: Side) -> dict:
    """`page=50000` (no filter), guard on: refused, and what the guard said."""
    status, body = drivers.get(
        side.servers["on"].base,
        f"/api/v1/resources/transactions/rows/?page={DEEP_PAGE}",
        side.tokens["bench"],
        300,
        error_body=True,
    )
    out = {
        "on": {
            "status": status,
            **{k: (body or {}).get(k) for k in ("code", "estimated_cost", "max_cost", "hints")},
        }
    }
    drivers.log(f"  page={DEEP_PAGE} guard on: {out['on']}")
    # The same rows by a cursor (after the last row of the page before), guard on.
    found = side.job("cursor", filter_sql="valid_to IS NULL", page=DEEP_PAGE - 1)
    started = time.perf_counter()
    status, body = drivers.get(
        side.servers["on"].base,
        f"/api/v1/resources/transactions/rows/?cursor={found['cursor']}",
        side.tokens["bench"],
        300,
    )
    first = (body or {}).get("results", [{}])[0].get("transaction_id")
    out["cursor"] = {
        "status": status,
        "ms": round((time.perf_counter() - started) * 1000, 1),
        "first_row_as_expected": first == found["expected_next"],
    }
    drivers.log(f"  the same rows by cursor, guard on: {out['cursor']}")
    return out


def probes(side: Side) -> list[dict]:
    """Each of PROBES: its estimated cost (the `probe` server) and the time of its first
    request with the guard off (HTTP included)."""
    out = []
    for query in PROBES:
        path = f"/api/v1/resources/transactions/rows/?{query}"
        _status, body = drivers.get(
            side.servers["probe"].base, path, side.tokens["bench"], 300, error_body=True
        )
        # The first request only: the next ones of a deep page are keyset pages (PageStarts).
        started = time.perf_counter()
        status, _body = drivers.get(side.servers["off"].base, path, side.tokens["bench"], 300)
        out.append(
            {
                "query": query or "(none)",
                "estimated_cost": (body or {}).get("estimated_cost"),
                "ms": round((time.perf_counter() - started) * 1000, 1),
                "status": status,
            }
        )
        drivers.log(f"  probe {out[-1]}")
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
    side.start({"probe": SERVERS["on"]}, env={"LAKE_QUERY_MAX_COST": "0.001"})
    probed = probes(side)
    side.servers.pop("probe").stop()
    deep = deep_page(side)
    deep["off"] = next(p for p in probed if p["query"] == f"page={DEEP_PAGE}")
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
            f"{deep['off']['ms']} ms (first request); the same rows by `cursor=` (guard on) "
            f"{deep['cursor']['status']} in {deep['cursor']['ms']} ms (first row as "
            f"expected: {deep['cursor']['first_row_as_expected']})",
            report.table(
                ["query (page 1 unless said)", "estimated cost", "ms, guard off", "guard on"],
                [
                    [
                        f"`{p['query']}`",
                        report.fmt(p["estimated_cost"], ",.0f"),
                        report.fmt(p["ms"], ",.1f"),
                        "refused" if (p["estimated_cost"] or 0) > deep["on"]["max_cost"] else "-",
                    ]
                    for p in probed
                ],
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
            "path": rows.ROWS_PATH,
            "deep_page": deep,
            "probes": probed,
            "runs": runs,
            "figures": figures,
            "guard_cost_rounds": per_round,
            "targets": checks,
            "passed": passed,
        },
        markdown,
    )
