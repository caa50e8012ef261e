"""What the quota check costs page 1 of rows/ (issue 21).

The query of `rows` (a) (`country=FR&amount__gt=100&fields=...`, page 1) on two servers
of the same tree and database, by the same token: `on` counts quotas with limits too
high to refuse anything (each request: the counters' Redis round trip, the limits, the
RateLimit-* headers; each page: the rows charged, a second round trip); `off` has
QUOTAS_ENABLED=false. The two alternate in --slices slices, the first flipping each round.
Target: the quota check costs page 1 at most 5% of its req/s (median over the rounds of
1 - rps(on) / rps(off)).
"""

from __future__ import annotations

import statistics
import time
import urllib.request

from bench.harness import drivers, machine, report
from bench.harness.report import Target
from bench.harness.scenario import Http, Side, drive
from bench.scenarios import rows

NAME = "quota"
DESCRIPTION = "rows page 1 with quotas counted vs off (issue 21)"
SERVERS = {"on": "benchsite.settings", "off": "benchsite.settings"}
HIGH = str(10**12)  # a limit no run reaches: the cost of counting, never a 429
ENV = {
    "on": {"QUOTAS_ENABLED": "true", "QUOTA_REQUESTS_PER_MINUTE": HIGH, "QUOTA_ROWS_PER_DAY": HIGH},
    "off": {"QUOTAS_ENABLED": "false"},
}
SCENARIOS = [
    Http("on", "(a) page 1, quotas counted", server="on", group="quota"),
    Http("off", "(a) page 1, quotas off", server="off", group="quota"),
]
TARGETS = [Target("the quota check costs page 1 <= 5%", "on", "quota_cost", "<=", 0.05)]
COMPARE = ["on", "off"]
DEFAULTS = {"rounds": 3, "slices": 2}


def prepare(side: Side, args) -> None:
    rows.prepare_data(side, args)
    side.tokens["bench"] = side.job(
        "token", username="bench", grants=[{"resource": "transactions", "privilege": "read"}]
    )["token"]
    side.paths.update(on=rows.ROWS_PATH, off=rows.ROWS_PATH)


def quota_headers(side: Side, server: str) -> dict[str, str]:
    """The RateLimit headers a server answers with (none when quotas are off)."""
    request = urllib.request.Request(side.servers[server].base + rows.ROWS_PATH)
    request.add_header("Authorization", f"Token {side.tokens['bench']}")
    with urllib.request.urlopen(request, timeout=60) as response:
        return {k: v for k, v in response.headers.items() if "ratelimit" in k.lower()}


def run(side: Side, args) -> bool:
    drivers.require_wrk()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    prepare(side, args)
    info = machine.facts(side.db_url, side.tree)
    for server in SERVERS:
        side.start(SERVERS, names=[server], env=ENV[server])
    for scenario in SCENARIOS:
        body = side.check(scenario)
        drivers.log(f"  {scenario.name}: 200, {len(body['results'])} rows")
    headers = {server: quota_headers(side, server) for server in SERVERS}
    if not headers["on"] or headers["off"]:
        raise SystemExit(f"quota headers: expected on `on` only, got {headers}")
    runs = drive(side, SCENARIOS, args)
    side.stop()
    figures = report.summarise(runs)
    per_round = [1 - a["rps"] / b["rps"] for a, b in zip(runs["on"], runs["off"], strict=True)]
    figures["on"]["quota_cost"] = statistics.median(per_round)
    figures["on"]["quota_cost_by_cpu"] = 1 - (
        figures["off"]["cpu_ms_per_req"] / figures["on"]["cpu_ms_per_req"]
    )
    checks = report.check_all(TARGETS, figures)
    passed = all(c["passed"] for c in checks)
    markdown = "\n\n".join(
        [
            f"### quota ({args.rows:,} transactions; {args.rounds} rounds of {args.duration} s "
            f"in {args.slices} slices, {args.connections} connections)",
            machine.one_line(info),
            report.table(
                ["quotas", "req/s", "p50 ms", "p99 ms", "server CPU ms/req", "errors"],
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
            "cost per round (1 - on/off): "
            + ", ".join(f"{c:.1%}" for c in per_round)
            + f"; by server CPU {figures['on']['quota_cost_by_cpu']:.1%}",
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
            "env": ENV,
            "headers": headers,
            "runs": runs,
            "figures": figures,
            "cost_rounds": per_round,
            "targets": checks,
            "passed": passed,
        },
        markdown,
    )
